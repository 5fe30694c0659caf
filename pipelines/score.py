"""Flow ``score``: load a registered (or saved) detector, score a file, write scores atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from genaug import read_table
from genaug.errors import MissingColumnError
from genaug.io import write_parquet_atomic
from pipelines._retry import retry_unless_bad_input


def default_output(data: str) -> str:
    """``data/scores/<input stem>.scores.parquet``."""
    return str(Path("data/scores") / f"{Path(data).stem}.scores.parquet")


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def score_file(data: str, model: str, out: str, key_column: str | None) -> dict[str, Any]:
    """Validate and score ``data`` with ``model``; write ``out`` (temp file, then rename)."""
    from genaug import tracking

    logger = get_run_logger()
    det, desc = tracking.load_detector(model)
    df = read_table(data)
    if key_column and key_column not in df.columns:
        raise MissingColumnError("key column absent", file=data, column=key_column,
                                 expected=f"a column named {key_column!r}",
                                 found=f"columns {list(df.columns)}")
    extra = (key_column,) if key_column else ()
    scores = det.score_frame(df, file=data, allow_extra=extra)
    key = df[key_column].to_numpy() if key_column else range(len(df))
    scores.insert(0, key_column or "row", key)
    write_parquet_atomic(scores, out)
    logger.info("scored %d rows of %s with %s: %d flagged", len(df), data, desc,
                int(scores["is_anomaly"].sum()))
    return {"output": out, "model": desc, "threshold": det.threshold_}


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def log_scores(data: str, scored: dict[str, Any]) -> dict[str, Any]:
    """Log the scoring run to MLflow."""
    import pandas as pd

    from genaug import tracking

    scores = pd.read_parquet(scored["output"])
    run_id, url = tracking.log_scoring_run(
        scores, model_desc=scored["model"], input_file=data, output_file=scored["output"],
        threshold=scored["threshold"],
    )
    return {"run_id": run_id, "url": url, "n_rows": len(scores),
            "n_flagged": int(scores["is_anomaly"].sum())}


@flow(name="score", log_prints=True)
def score(
    data: str = "data/sample/adult_incoming.parquet",
    model: str = "models:/genaug-detector@champion",
    out: str | None = None,
    key_column: str | None = None,
) -> dict[str, Any]:
    """Score ``data`` with ``model`` (a registry URI or a model folder)."""
    out = out or default_output(data)
    scored = score_file(data, model, out, key_column)
    logged = log_scores(data, scored)
    create_markdown_artifact(
        key="scoring-summary",
        markdown=(f"### Scored `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| model | {scored['model']} |\n| rows | {logged['n_rows']} |\n"
                  f"| flagged | {logged['n_flagged']} |\n| output | `{out}` |\n"
                  f"| MLflow run | {logged['url']} |\n"),
    )
    return {**scored, **logged}


if __name__ == "__main__":
    score()
