"""Flow ``score-incoming``: score every new file in a folder; quarantine bad ones; report drift."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from genaug.batch import (
    BatchResult,
    FileOutcome,
    list_incoming,
    process_file,
    score_incoming,
    sweep_temps,
)
from genaug.detector import AnomalyDetector
from genaug.ledger import Ledger
from genaug.scoring import ScoredFile
from pipelines._retry import retry_unless_bad_input


def log_file(desc: str, threshold: float, target: Path, scored: ScoredFile) -> None:
    """Log one scored file to MLflow: counts, score plots, drift metrics and table."""
    from genaug import tracking

    tracking.log_scoring_run(
        scored.sample, model_desc=desc, input_file=target.name, output_file=str(target),
        threshold=threshold, drift=scored.drift,
        extra_metrics={"n_rows": scored.n_rows, "n_flagged": scored.n_flagged,
                       "flag_rate": scored.n_flagged / max(scored.n_rows, 1)},
    )


def report(res: BatchResult, desc: str, quarantine: str) -> dict[str, Any]:
    """The flow's result: the model, a summary line, totals, one table row per file."""
    rows = [f.row() for f in res.files]
    rows += [{"file": f, "outcome": f"quarantined (see `{quarantine}/{f}.reason.json`)"}
             for f in res.quarantined]
    rows += [{"file": f, "outcome": "duplicate (content seen before)"} for f in res.duplicates]
    rows += [{"file": f, "outcome": "failed (left for the next run)"} for f in res.failed]
    keys = list(rows[0]) if res.files else ["file", "outcome"]
    for r in rows:
        keys += [k for k in r if k not in keys]
    rows = [{k: r.get(k) for k in keys} for r in rows]
    return {"model": desc, "summary": res.summary(), "counts": res.counts(),
            "drifted_columns": res.drifted_columns, "table": rows, **asdict(res)}


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input)
def process_folder(incoming: str, model: str, out: str, processed: str, quarantine: str,
                   ledger: str, min_age: float, log_to_mlflow: bool,
                   stale_after: float = 3600.0) -> dict[str, Any]:
    """Load the model once and process the folder; each scored file is logged to MLflow."""
    from genaug import tracking

    logger = get_run_logger()
    if log_to_mlflow or model.startswith("models:/"):
        tracking.check_store()  # an unreachable store fails (and retries) before any file moves
    det, desc = tracking.load_detector(model)

    def on_scored(target: Path, scored: ScoredFile) -> None:
        if log_to_mlflow:
            log_file(desc, det.threshold_, target, scored)

    res = score_incoming(incoming, det, out=out, processed=processed, quarantine=quarantine,
                         ledger=Ledger(ledger, stale_after=stale_after), min_age=min_age,
                         on_scored=on_scored)
    logger.info("%s with %s", res.summary(), desc)
    return report(res, desc, quarantine)


def dask_runner(dask: str, workers: int = 2) -> Any:
    """A Prefect ``DaskTaskRunner``: a temporary local cluster of ``workers`` processes
    (``dask="local"``) or the scheduler at address ``dask`` (e.g. ``tcp://10.0.0.5:8786``)."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as e:  # the optional extra
        raise RuntimeError("Dask runs need the distributed extra: "
                           "pip install -e '.[distributed]'") from e
    if dask == "local":
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return DaskTaskRunner(address=dask)


@task(retries=2, retry_delay_seconds=5)
def check_store() -> None:
    """Fail (and retry) early when the MLflow store cannot be reached."""
    from genaug import tracking

    tracking.check_store()


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input)
def load_model(model: str) -> tuple[AnomalyDetector, str]:
    """The detector and its description, loaded once per run."""
    from genaug import tracking

    if model.startswith("models:/"):
        tracking.check_store()
    return tracking.load_detector(model)


@task(cache_policy=NO_CACHE)
def score_one(path: str, detector: AnomalyDetector, out: str, processed: str, quarantine: str,
              ledger: str, min_age: float, stale_after: float = 3600.0) -> FileOutcome:
    """Claim, score and move one file (on a Dask worker); bad input is quarantined, not raised."""
    return process_file(path, detector, out=out, processed=processed, quarantine=quarantine,
                        ledger=Ledger(ledger, stale_after=stale_after), min_age=min_age)


@flow(name="score-incoming-files")
def score_files(incoming: str, model: str, out: str, processed: str, quarantine: str,
                ledger: str, min_age: float, log_to_mlflow: bool,
                stale_after: float = 3600.0) -> dict[str, Any]:
    """One task per file on the flow's task runner (a Dask cluster); MLflow logging stays in
    this process. The model is loaded once and shipped to the workers with each task."""
    logger = get_run_logger()
    if log_to_mlflow:
        check_store()  # an unreachable store fails (and retries) before any file moves
    det, desc = load_model(model)
    sweep_temps(out, quarantine, ledger=Ledger(ledger, stale_after=stale_after))
    futures = [score_one.submit(str(p), det, out, processed, quarantine, ledger, min_age,
                                stale_after)
               for p in list_incoming(incoming)]
    res = BatchResult()
    for fut in futures:
        outcome = fut.result()
        res.add(outcome)
        if log_to_mlflow and outcome.scored is not None:
            try:
                log_file(desc, det.threshold_, outcome.scored.output, outcome.scored)
            except Exception:  # the file is scored and recorded; only the report failed
                logger.exception("reporting the scores of %s failed", outcome.name)
    logger.info("%s with %s", res.summary(), desc)
    return report(res, desc, quarantine)


@task(retries=2, retry_delay_seconds=5)
def log_batch(res: dict[str, Any], incoming: str) -> str:
    """Log the run's totals and per-file table to MLflow (one ``batch`` run)."""
    from genaug import tracking

    counts = dict(res["counts"])
    counts["flag_rate"] = counts["rows_flagged"] / max(counts["rows_scored"], 1)
    _, url = tracking.log_batch_run(counts, res["table"], model_desc=res["model"],
                                    incoming=incoming)
    return url


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
    dask: str | None = None,
    dask_workers: int = 2,
    stale_after: float = 3600.0,
) -> dict[str, Any]:
    """Score every new Parquet/CSV file in ``incoming`` exactly once.

    ``dask=None`` (the default) scores the files one after the other in this process.
    ``dask="local"`` starts a temporary local Dask cluster of ``dask_workers`` processes and
    ``dask="tcp://host:8786"`` uses a running scheduler: each file is then a task of the subflow
    ``score-incoming-files`` (needs the ``distributed`` extra, and workers that see the same
    folders and ledger; the ledger's claims keep every content scored once).

    ``stale_after`` (seconds): a ledger claim older than this is taken to belong to a crashed
    run, so its file is claimed and scored again, and temp files that old are swept. Set it
    above the longest time one file can take to score (default one hour).

    Artifacts: ``incoming-batch`` (markdown summary) and ``incoming-batch-files`` (a table, one
    row per file with its counts and drift). With ``log_to_mlflow``, each scored file gets an
    MLflow scoring run and the whole run a ``batch`` run with the totals.
    """
    Path(incoming).mkdir(parents=True, exist_ok=True)
    if dask:
        runner = score_files.with_options(task_runner=dask_runner(dask, dask_workers))
        res = runner(incoming, model, out, processed, quarantine, ledger, min_age, log_to_mlflow,
                     stale_after)
    else:
        res = process_folder(incoming, model, out, processed, quarantine, ledger, min_age,
                             log_to_mlflow, stale_after)
    if log_to_mlflow:
        res["mlflow_url"] = log_batch(res, incoming)
    publish(res, incoming)
    return res


def publish(res: dict[str, Any], incoming: str) -> None:
    """The run's Prefect artifacts: a markdown summary and a per-file table."""
    counts = "\n".join(f"| {k.replace('_', ' ')} | {v} |" for k, v in res["counts"].items())
    drift = ", ".join(res["drifted_columns"]) or "none"
    link = f"\n\nMLflow batch run: {res['mlflow_url']}" if res.get("mlflow_url") else ""
    create_markdown_artifact(
        key="incoming-batch",
        markdown=(f"### Incoming batch `{incoming}`\n\n{res['summary']}\n\nModel: {res['model']}"
                  f"\n\n| count | value |\n|---|---|\n{counts}\n\nDrifted columns (PSI > 0.25 "
                  f"in a file of at least 200 rows): {drift}{link}\n"),
    )
    if res["table"]:
        create_table_artifact(key="incoming-batch-files", table=res["table"],
                              description=f"Files of the incoming batch `{incoming}`")


if __name__ == "__main__":
    score_incoming_flow()
