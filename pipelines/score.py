"""Flow ``score``: load a registered (or saved) detector, score a file, write scores atomically."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from genaug.images import is_image_source
from genaug.scoring import score_file as score_table_file
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
    scored = score_table_file(data, det, out, key_column=key_column)
    logger.info("scored %d rows of %s with %s: %d flagged", scored.n_rows, data, desc,
                scored.n_flagged)
    fd, sample = tempfile.mkstemp(prefix="genaug-scores-sample-", suffix=".parquet")
    os.close(fd)
    scored.sample.to_parquet(sample)  # a bounded sample for the MLflow report
    d = scored.drift
    if d is not None and d.drifted_columns:
        logger.warning("drift (PSI > 0.25) in %s", ", ".join(d.drifted_columns))
    return {"output": out, "model": desc, "threshold": det.threshold_, "sample": str(sample),
            "n_rows": scored.n_rows, "n_flagged": scored.n_flagged, "drift": d}


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def log_scores(data: str, scored: dict[str, Any]) -> dict[str, Any]:
    """Log the scoring run to MLflow."""
    import pandas as pd

    from genaug import tracking

    sample = pd.read_parquet(scored["sample"])
    run_id, url = tracking.log_scoring_run(
        sample, model_desc=scored["model"], input_file=data, output_file=scored["output"],
        threshold=scored["threshold"], drift=scored["drift"],
        extra_metrics={"n_rows": scored["n_rows"], "n_flagged": scored["n_flagged"],
                       "flag_rate": scored["n_flagged"] / max(scored["n_rows"], 1)},
    )
    Path(scored["sample"]).unlink(missing_ok=True)
    d = scored["drift"]
    return {"run_id": run_id, "url": url, "n_rows": scored["n_rows"],
            "n_flagged": scored["n_flagged"],
            "drifted_columns": [] if d is None else d.drifted_columns}


DEFAULT_MODEL = "models:/genaug-detector@champion"


@flow(name="score", log_prints=True)
def score(
    data: str = "data/sample/adult_incoming.parquet",
    model: str = DEFAULT_MODEL,
    out: str | None = None,
    key_column: str | None = None,
) -> dict[str, Any]:
    """Score ``data`` with ``model`` (a registry URI or a model folder). A folder or ``.npz`` of
    images goes to the image flow ``score-image-data`` (the image detector's champion unless
    ``model`` names another)."""
    if is_image_source(data):  # images: scored in place by the image detector
        from pipelines.images import IMAGE_DETECTOR, score_image_data

        return score_image_data(data=data, out=out, model=(
            f"models:/{IMAGE_DETECTOR}@champion" if model == DEFAULT_MODEL else model))
    out = out or default_output(data)
    scored = score_file(data, model, out, key_column)
    logged = log_scores(data, scored)
    create_markdown_artifact(
        key="scoring-summary",
        markdown=(f"### Scored `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| model | {scored['model']} |\n| rows | {logged['n_rows']} |\n"
                  f"| flagged | {logged['n_flagged']} |\n| output | `{out}` |\n"
                  f"| drifted columns (PSI > 0.25) | "
                  f"{', '.join(logged['drifted_columns']) or 'none'} |\n"
                  f"| MLflow run | {logged['url']} |\n"),
    )
    d = scored["drift"]
    return {**scored, **logged, "drift": None if d is None else asdict(d)}


if __name__ == "__main__":
    score()
