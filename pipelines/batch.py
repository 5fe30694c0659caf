"""Flow ``score-incoming``: score every new file in a folder; quarantine bad ones."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from genaug.batch import score_incoming
from genaug.ledger import Ledger
from pipelines._retry import retry_unless_bad_input


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input)
def process_folder(incoming: str, model: str, out: str, processed: str, quarantine: str,
                   ledger: str, min_age: float, log_to_mlflow: bool) -> dict[str, Any]:
    """Load the model once and process the folder; each scored file is logged to MLflow."""
    from genaug import tracking

    logger = get_run_logger()
    if log_to_mlflow or model.startswith("models:/"):
        tracking.check_store()  # an unreachable store fails (and retries) before any file moves
    det, desc = tracking.load_detector(model)

    def log_file(target: Path, scores: Any) -> None:
        if log_to_mlflow:
            tracking.log_scoring_run(scores, model_desc=desc, input_file=target.name,
                                     output_file=str(target), threshold=det.threshold_)

    res = score_incoming(incoming, det, out=out, processed=processed, quarantine=quarantine,
                         ledger=Ledger(ledger), min_age=min_age, on_scored=log_file)
    logger.info("%s with %s", res.summary(), desc)
    return {"model": desc, "summary": res.summary(), **asdict(res)}


@flow(name="score-incoming", log_prints=True)
def score_incoming_flow(
    incoming: str = "data/incoming",
    model: str = "models:/genaug-detector@champion",
    out: str = "data/scores",
    processed: str = "data/processed",
    quarantine: str = "data/quarantine",
    ledger: str = "data/ledger.sqlite",
    min_age: float = 2.0,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Score every new Parquet/CSV file in ``incoming`` exactly once."""
    Path(incoming).mkdir(parents=True, exist_ok=True)
    res = process_folder(incoming, model, out, processed, quarantine, ledger, min_age,
                         log_to_mlflow)
    rows = "\n".join(f"| {f} | quarantined (see `{quarantine}/{f}.reason.json`) |"
                     for f in res["quarantined"])
    create_markdown_artifact(
        key="incoming-batch",
        markdown=(f"### Incoming batch `{incoming}`\n\n{res['summary']}\n\n"
                  f"Model: {res['model']}\n\n| file | outcome |\n|---|---|\n"
                  + "\n".join(f"| {f} | scored |" for f in res["scored"]) + "\n" + rows),
    )
    return res


if __name__ == "__main__":
    score_incoming_flow()
