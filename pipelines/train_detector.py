"""Flow ``train-detector``: read a table, fit the VAE detector, log and register it in MLflow."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from genaug import AnomalyDetector
from genaug.gate import check_labels, compare, read_validation
from genaug.images import is_image_source
from genaug.subsample import read_training_table
from pipelines._retry import retry_unless_bad_input

__all__ = ["check_labels", "train_detector"]


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def check_validation(validation_data: str, validation_label: str) -> dict[str, int]:
    """Fail fast, before training, on a validation file without usable labels."""
    _, y = read_validation(validation_data, validation_label)
    return {"n_rows": len(y), "n_anomalies": int(y.sum())}


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def judge_challenger(model_dir: str, model_name: str, validation_data: str,
                     validation_label: str, min_val_auc: float, tolerance: float) -> Any:
    """Score the fixed validation file with the new model and the current champion; decide."""
    from genaug import tracking

    logger = get_run_logger()
    X, y = read_validation(validation_data, validation_label)
    champion, desc, error = tracking.load_champion(model_name)
    decision = compare(AnomalyDetector.load(model_dir), champion, X, y, file=validation_data,
                       min_val_auc=min_val_auc, tolerance=tolerance, champion_desc=desc,
                       champion_error=error)
    logger.info("retrain gate: %s", decision.reason)
    return decision


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def fit_detector(
    data: str, params: dict[str, Any], model_dir: str, label_column: str | None = None,
    max_train_rows: int | None = None,
) -> dict[str, Any]:
    """Read and validate ``data`` (or a seeded sample of ``max_train_rows`` of its rows), fit a
    detector, save it to ``model_dir``."""
    from genaug import tracking

    logger = get_run_logger()
    tracking.check_store()  # fail (and retry) before a long fit whose result could not be logged
    df, file_rows = read_training_table(data, max_train_rows,
                                        random_state=params.get("random_state"))
    if file_rows is not None and file_rows > len(df):
        logger.info("training on a random sample of %d of the %d rows of %s (max_train_rows)",
                    len(df), file_rows, data)
    if label_column:
        check_labels(df, label_column, data)
    t0 = time.perf_counter()
    det = AnomalyDetector(**params).fit(df, file=data)
    seconds = time.perf_counter() - t0
    det.save(model_dir)
    logger.info("fitted on %d rows x %d columns in %.1f s; threshold %.4g (flag rate %.2f%%)",
                len(df), det.n_features_in_, seconds, det.threshold_, 100 * det.flag_rate_)
    return {"model_dir": model_dir, "fit_seconds": seconds, "n_rows": len(df),
            "n_file_rows": len(df) if file_rows is None else file_rows}


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def log_and_register(
    data: str, model_dir: str, fit_seconds: float, model_name: str,
    label_column: str | None, min_val_auc: float, decision: Any = None,
    validation_data: str | None = None, max_train_rows: int | None = None,
    sample_seed: int | None = None,
) -> dict[str, Any]:
    """Log the fitted detector to MLflow and register it; move ``champion`` if it passes."""
    from genaug import tracking

    tracking.check_store()  # MLflow itself would wait ~20 s per call on a locked SQLite store
    # the same seeded sample fit_detector trained on (the whole file without max_train_rows)
    df, file_rows = read_training_table(data, max_train_rows, random_state=sample_seed)
    det = AnomalyDetector.load(model_dir)
    labels = None
    if label_column:
        labels = check_labels(df, label_column, data)
    rec = tracking.log_detector_training(
        det, df, dataset_name=Path(data).stem, source=str(Path(data).resolve()),
        register_as=model_name, labels=labels, min_val_auc=min_val_auc, fit_seconds=fit_seconds,
        decision=decision,
        validation_source=None if validation_data is None else str(Path(validation_data)),
        extra_params={"max_train_rows": max_train_rows,
                      "n_file_rows": len(df) if file_rows is None else file_rows},
    )
    return rec.__dict__


@flow(name="train-detector", log_prints=True)
def train_detector(
    data: str = "data/sample/adult_train.parquet",
    model_name: str = "genaug-detector",
    target: str | None = "income",
    label_column: str | None = None,
    min_val_auc: float = 0.6,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
    validation_data: str | None = None,
    validation_label: str = "is_anomaly",
    tolerance: float = 0.0,
    max_train_rows: int | None = None,
) -> dict[str, Any]:
    """Train a detector on ``data`` and register it as ``model_name`` in MLflow.

    With ``max_train_rows``, a file with more rows is not loaded whole: a uniform random sample
    of that many rows (seeded by ``random_state``; Parquet read in batches, so memory stays
    bounded) is the training table. The run's parameters record ``max_train_rows``, ``n_rows``
    (rows trained on) and ``n_file_rows``.

    ``target`` is left out of the features; ``label_column`` (1 = anomaly), if given, is left
    out too. The ``champion`` alias moves to the new version only if it passes the gate:

    * with ``validation_data`` (a fixed Parquet/CSV file with 0/1 labels in
      ``validation_label``): its ROC-AUC there is >= ``min_val_auc`` and >= the current
      champion's ROC-AUC on the same file minus ``tolerance`` (:mod:`genaug.gate`);
    * else with ``label_column``: the ROC-AUC on the held-out training rows is >= ``min_val_auc``;
    * else: the training losses are finite.

    The result's ``gate`` says why; ``champion_version`` is where the alias points afterwards.
    """
    if is_image_source(data):  # a folder or .npz of images: the image detector's flow
        from pipelines.images import IMAGE_DETECTOR, train_image_detector

        return train_image_detector(
            data=data, random_state=random_state, params=params,
            model_name=IMAGE_DETECTOR if model_name == "genaug-detector" else model_name)
    p = {"random_state": random_state, "target": target, "verbose": True, **(params or {})}
    if label_column:
        p["exclude_columns"] = (label_column,)
    if validation_data:
        check_validation(validation_data, validation_label)
    with tempfile.TemporaryDirectory(prefix="genaug-model-") as tmp:
        fitted = fit_detector(data, p, str(Path(tmp) / "detector"), label_column,
                              max_train_rows)
        decision = None
        if validation_data:
            decision = judge_challenger(fitted["model_dir"], model_name, validation_data,
                                        validation_label, min_val_auc, tolerance)
        rec = log_and_register(data, fitted["model_dir"], fitted["fit_seconds"], model_name,
                               label_column, min_val_auc, decision, validation_data,
                               max_train_rows, p.get("random_state"))
    create_markdown_artifact(key="detector-training", markdown=_summary(data, fitted, rec))
    return rec


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _summary(data: str, fitted: dict[str, Any], rec: dict[str, Any]) -> str:
    """The training run's Prefect artifact (markdown)."""
    md = (f"### Detector trained on `{data}`\n\n| item | value |\n|---|---|\n"
          f"| rows | {fitted['n_rows']} (of {fitted['n_file_rows']} in the file) |\n"
          f"| fit seconds | {fitted['fit_seconds']:.1f} |\n"
          f"| registered | {rec['registered_name']} v{rec['version']} |\n"
          f"| gate | {rec['gate']} |\n| promoted | {rec['promoted']} |\n"
          f"| champion now | v{rec['champion_version']} |\n| MLflow run | {rec['url']} |\n")
    cmp = rec.get("comparison")
    if cmp:
        champ = cmp["champion"] or {}
        md += ("\n#### Fixed validation set\n\n| model | ROC-AUC | PR-AUC |\n|---|---|---|\n"
               f"| challenger (v{rec['version']}) | {_num(cmp['challenger']['roc_auc'])} | "
               f"{_num(cmp['challenger']['pr_auc'])} |\n"
               f"| {cmp['champion_desc'] or 'no champion'} | {_num(champ.get('roc_auc'))} | "
               f"{_num(champ.get('pr_auc'))} |\n\n"
               f"{cmp['challenger']['n_rows']} rows, {cmp['challenger']['n_anomalies']} "
               f"anomalies; floor {cmp['min_val_auc']}, tolerance {cmp['tolerance']}.")
        if cmp["champion_error"]:
            md += f" Champion unusable: {cmp['champion_error']}"
        md += "\n"
    return md


if __name__ == "__main__":
    train_detector()
