"""Everything genaug logs to MLflow. This is the only module that imports mlflow.

Default store: ``sqlite:///<cwd>/mlruns/mlflow.db`` (artifacts under ``<cwd>/mlruns/``), so run
from the project root; ``MLFLOW_TRACKING_URI`` overrides it. Runs are written through an
explicit :class:`~mlflow.MlflowClient` and ``run_id``; the fluent API is used only for
``pyfunc.log_model`` and is pointed at the right store for that call alone.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import socket
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import DatasetInput, InputTag, Metric, Param  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

from .augmented import Manifest  # noqa: E402
from .augmenter import Augmenter  # noqa: E402
from .detector import AnomalyDetector  # noqa: E402
from .drift import DriftReport  # noqa: E402
from .errors import GenaugInputError, ModelFormatError, TrackingUnavailableError  # noqa: E402
from .evaluation import EvaluationResult  # noqa: E402
from .fidelity import FidelityReport  # noqa: E402
from .gate import GateDecision  # noqa: E402

T = TypeVar("T")
CHAMPION = "champion"
TRAIN_EXPERIMENT = "genaug-detector"
SCORE_EXPERIMENT = "genaug-scoring"
AUGMENTER_EXPERIMENT = "genaug-augmenter"
EVALUATION_EXPERIMENT = "genaug-augmentation-eval"
AUGMENT_EXPERIMENT = "genaug-augmented-data"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store in ``./mlruns`` (absolute path)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = Path.cwd() / "mlruns"
    root.mkdir(exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def check_store(uri: str | None = None, timeout: float = 2.0) -> str:
    """Check the tracking store can be written now; return its URI or raise a clear error.

    Jobs call this before touching any file, so an unreachable store fails them early (and
    their retries apply) instead of after files were moved. A SQLite store is probed with a
    write lock taken and released within ``timeout`` seconds (MLflow itself would wait ~20 s per
    call on a locked database); other stores with one read.
    """
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:"):
        _check_sqlite(uri, timeout)
        return uri
    if uri.startswith(("http://", "https://")):
        _check_http(uri, timeout)
        return uri
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # MLflow raises MlflowException, OSError, its own URI errors...
        raise TrackingUnavailableError(uri, f"{type(e).__name__}: {str(e)[:200]}") from None
    return uri


def _check_http(uri: str, timeout: float) -> None:
    """GET the tracking server's ``/health`` within ``timeout`` seconds (MLflow's own client
    would retry with backoff for minutes)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            if r.status != 200:
                raise TrackingUnavailableError(uri, f"/health answered HTTP {r.status}")
    except urllib.error.HTTPError as e:
        raise TrackingUnavailableError(uri, f"/health answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingUnavailableError(uri, f"server unreachable: {reason}") from None


def _check_sqlite(uri: str, timeout: float) -> None:
    path = uri.split("?", 1)[0][len("sqlite:"):]
    if path in ("", "//", "///", "///:memory:"):
        return  # in-memory store: nothing to check
    path = Path(path[3:] if path.startswith("///") else path.lstrip("/"))
    if not path.exists():
        parent = path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise TrackingUnavailableError(uri, f"folder {str(parent)!r} is missing or not "
                                                "writable, so the database cannot be created")
        return  # MLflow creates the database on first use
    try:
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock MLflow needs; released at once
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.Error as e:
        raise TrackingUnavailableError(uri, f"SQLite: {e}") from None


def client() -> MlflowClient:
    """A client on :func:`tracking_uri`."""
    return MlflowClient(tracking_uri=tracking_uri())


@contextlib.contextmanager
def _store(uri: str) -> Iterator[None]:
    """Point the fluent API (tracking and registry) at ``uri`` for one block, then restore it."""
    # mlflow.set_*_uri also export MLFLOW_*_URI; restore the variables as they were (None unsets)
    before = os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with warnings.catch_warnings():
            # MLflow's hints about integer columns, input examples and dataset sources
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        # unset MLflow's globals, then put the variables back: the effective URIs are as before
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for key, value in zip(("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"), before):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _scoped(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` with MLflow's global URIs on :func:`tracking_uri` (some MLflow internals,
    e.g. model-version creation, build their own client from the global URI)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with _store(tracking_uri()):
            return fn(*args, **kwargs)

    return wrapper


def experiment_id(c: MlflowClient, name: str) -> str:
    """Id of experiment ``name``, created if needed."""
    exp = c.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else c.create_experiment(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def close_orphaned_runs(c: MlflowClient, exp_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``exp_id`` that a process on this host started and
    that died without ending them (SIGKILL, power loss). Returns their ids."""
    host = socket.gethostname()
    runs = c.search_runs([exp_id], "attributes.status = 'RUNNING'", max_results=200)
    closed = []
    for r in runs:
        tags = r.data.tags
        pid = tags.get("genaug.pid")
        if tags.get("genaug.host") == host and pid and pid.isdigit() and not _alive(int(pid)):
            c.set_tag(r.info.run_id, "genaug.orphaned", f"process {pid} died during the run")
            c.set_terminated(r.info.run_id, "KILLED")
            closed.append(r.info.run_id)
    return closed


@contextlib.contextmanager
def _run(c: MlflowClient, exp_id: str, *, run_name: str, tags: dict[str, str]) -> Iterator[str]:
    """A new run (its id) tagged with this host and process, ended FINISHED, or FAILED on any
    error; runs orphaned by dead processes are closed first."""
    close_orphaned_runs(c, exp_id)
    run = c.create_run(exp_id, run_name=run_name, tags={
        **tags, "genaug.host": socket.gethostname(), "genaug.pid": str(os.getpid())})
    run_id = run.info.run_id
    try:
        yield run_id
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    c.set_terminated(run_id, "FINISHED")


def run_url(run_id: str, exp_id: str, host: str = "http://127.0.0.1:5000") -> str:
    """Link to a run in ``genaug ui``."""
    return f"{host}/#/experiments/{exp_id}/runs/{run_id}"


def ui_command(uri: str | None = None, port: int = 5000) -> str:
    """The shell command that opens the MLflow UI on the store."""
    uri = uri or tracking_uri()
    return (f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {uri} "
            f"--host 127.0.0.1 --port {port} --workers 1")


# ---------------------------------------------------------------------------------- pyfunc
class DetectorModel(mlflow.pyfunc.PythonModel):
    """Registry wrapper: ``predict`` returns score, is_anomaly and per-column contributions."""

    def load_context(self, context: Any) -> None:
        self.detector = AnomalyDetector.load(context.artifacts["detector"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.detector.score_frame(model_input)


def _model_code(wrapper: str) -> str:
    """Source of a "model from code": MLflow stores it instead of a cloudpickled object."""
    return (f"import mlflow\nfrom genaug.tracking import {wrapper}\n\n"
            f"mlflow.models.set_model({wrapper}())\n")


def _log_pyfunc(run_id: str, name: str, wrapper: str, save: Callable[[Path], Path],
                example: pd.DataFrame, output: pd.DataFrame) -> Any:
    """Log a model folder written by ``save(path)`` in run ``run_id`` as the pyfunc ``name``
    served by the wrapper class ``wrapper`` (the folder is its artifact ``name``)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save(Path(tmp) / name)
        code = Path(tmp) / f"{name}_model.py"
        code.write_text(_model_code(wrapper))
        with mlflow.start_run(run_id=run_id):
            return mlflow.pyfunc.log_model(
                name=name, python_model=str(code), artifacts={name: str(folder)},
                signature=infer_signature(example, output), pip_requirements=_requirements(),
                input_example=example.head(3),
                code_paths=[str(Path(__file__).parent)],  # self-contained: ships genaug
            )


def _load_registered(ref: str, attr: str) -> tuple[Any, Any]:
    """The estimator ``attr`` of the pyfunc at ``models:/name@alias`` or ``/version``, and its
    registry entry."""
    mv = _model_version(ref)
    model = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}")
    return getattr(model.unwrap_python_model(), attr), mv


def _signature_frame(detector: AnomalyDetector, X: pd.DataFrame) -> pd.DataFrame:
    """Training rows as the pyfunc signature sees them: training dtypes, text as str.

    MLflow enforces these dtypes on ``predict`` input (it will not cast int64 to float64 or
    back); genaug's own schema check runs after it, inside the model.
    """
    sample = X[detector.schema_.feature_names].head(50).copy()
    for spec in detector.schema_.columns:
        col = sample[spec.name]
        if spec.kind == "categorical" and not (
            pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        ):
            sample[spec.name] = col.astype(object).where(col.notna(), None).map(
                lambda v: v if v is None else str(v))
    return sample


def _requirements() -> list[str]:
    import sklearn
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"scikit-learn=={sklearn.__version__}",
            f"pandas=={pd.__version__}", f"numpy=={np.__version__}", "pyarrow"]


# ---------------------------------------------------------------------------------- plots
def _loss_figure(history: list[dict[str, float]]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    h = pd.DataFrame(history)
    ax.plot(h["epoch"], h["train_loss"], label="train")
    if "val_loss" in h:
        v = h.dropna(subset=["val_loss"])
        ax.plot(v["epoch"], v["val_loss"], label="validation")
    ax.set(xlabel="epoch", ylabel="negative ELBO (nats/row)", title="VAE training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def _score_figure(scores: np.ndarray, threshold: float, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(scores, bins=60, color="tab:blue", alpha=0.8)
    ax.axvline(threshold, color="tab:red", ls="--", label=f"threshold {threshold:.3g}")
    ax.set(xlabel="anomaly score", ylabel="rows", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def _blame_figure(contrib: pd.DataFrame, title: str, top: int = 15) -> plt.Figure:
    counts = contrib.idxmax(axis=1).value_counts().head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(counts) + 1.2))
    ax.barh(counts.index.astype(str), counts.values, color="tab:orange")
    ax.set(xlabel="rows where the column is the top contributor", title=title)
    fig.tight_layout()
    return fig


def _log_figure(c: MlflowClient, run_id: str, fig: plt.Figure, path: str) -> None:
    c.log_figure(run_id, fig, path)
    plt.close(fig)


def _log_dataset(c: MlflowClient, run_id: str, df: pd.DataFrame | np.ndarray, name: str,
                 source: str | None, context: str, targets: np.ndarray | None = None) -> None:
    """Record the dataset (digest, schema, source) as a run input; arrays (images) too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(df, pd.DataFrame):
            ds = mlflow.data.from_pandas(df, source=source, name=name)
        else:
            ds = mlflow.data.from_numpy(np.asarray(df), source=source, name=name,
                                        targets=None if targets is None else np.asarray(targets))
    c.log_inputs(run_id, datasets=[DatasetInput(
        ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])])


# ---------------------------------------------------------------------------------- training
@dataclass
class TrainingRecord:
    """What :func:`log_detector_training` wrote."""

    run_id: str
    experiment_id: str
    model_uri: str
    registered_name: str | None
    version: int | None
    promoted: bool
    gate: str
    url: str
    champion_version: int | None = None
    comparison: dict[str, Any] | None = None


@_scoped
def log_detector_training(
    detector: AnomalyDetector,
    X: pd.DataFrame,
    *,
    dataset_name: str,
    source: str | None = None,
    register_as: str | None = "genaug-detector",
    labels: np.ndarray | None = None,
    min_val_auc: float = 0.6,
    fit_seconds: float | None = None,
    experiment: str = TRAIN_EXPERIMENT,
    run_name: str | None = None,
    extra_params: dict[str, Any] | None = None,
    decision: GateDecision | None = None,
    validation_source: str | None = None,
) -> TrainingRecord:
    """Log a fitted detector: params, per-epoch losses, dataset, plots, model; register it.

    The ``champion`` alias moves to the new version only if every logged loss is finite and:

    * with ``decision`` (:func:`genaug.gate.compare` on a fixed labelled validation file,
      ``validation_source``): the decision promotes it. Its numbers are logged as ``gate_*``
      metrics, the reason as the ``genaug.gate`` tag, the whole decision as
      ``gate/decision.json``;
    * else, when ``labels`` (1 = anomaly, aligned with ``X``) are given: the ROC-AUC on the
      detector's held-out validation rows is at least ``min_val_auc`` (it fails when those rows
      hold only one class);
    * else: finite losses are the only check.

    With ``decision`` and ``labels`` both given, the held-out ROC-AUC is logged but only the
    decision gates.
    """
    uri = tracking_uri()
    c = MlflowClient(tracking_uri=uri)
    exp_id = experiment_id(c, experiment)
    with _run(c, exp_id, run_name=run_name or f"train-{dataset_name}",
              tags={"genaug.kind": "detector-training",
                    "genaug.dataset": dataset_name}) as run_id:
        params = {k: v for k, v in detector.get_params().items()}
        params.update({
            "n_rows": len(X), "n_features": len(detector.model_feature_names_),
            "n_encoded": detector.dims_["n_features"], "hidden_resolved": detector.dims_["hidden"],
            "latent_resolved": detector.dims_["latent"], "n_steps": detector.n_steps_,
            "dropped_columns": ",".join(f"{k} ({v})" for k, v in detector.schema_.dropped.items())
            or "none",
        })
        params.update(extra_params or {})
        c.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        now = int(time.time() * 1000)
        metrics = []
        for rec in detector.history_:
            for key in ("train_loss", "val_loss"):
                if key in rec:
                    metrics.append(Metric(key, float(rec[key]), now, int(rec["epoch"])))
        summary = {"threshold": detector.threshold_, "flag_rate_validation": detector.flag_rate_,
                   "flag_rate_train": float(np.mean(detector.labels_))}
        if fit_seconds is not None:
            summary["fit_seconds"] = fit_seconds
        losses = [v for r in detector.history_ for k, v in r.items() if k.endswith("loss")]
        finite = bool(losses) and all(math.isfinite(v) for v in losses)
        gate = "passed: finite losses" if finite else "failed: non-finite training loss"
        if labels is not None:
            from sklearn.metrics import roc_auc_score

            y = np.asarray(labels).astype(int)
            val = detector.validation_index_
            if len(np.unique(y[val])) == 2:
                auc = float(roc_auc_score(y[val], detector.decision_scores_[val]))
                summary["val_roc_auc"] = auc
                if auc < min_val_auc:
                    gate = f"failed: validation ROC-AUC {auc:.3f} below floor {min_val_auc}"
                elif finite:
                    gate = f"passed: finite losses, validation ROC-AUC {auc:.3f} >= {min_val_auc}"
            else:
                gate = ("failed: labels given but the held-out validation rows hold one class, "
                        "so the ROC-AUC floor cannot be checked")
        if decision is not None:
            summary.update(decision.metrics())
            gate = decision.reason if finite else "failed: non-finite training loss"
        metrics += [Metric(k, float(v), now, 0) for k, v in summary.items()]
        for i in range(0, len(metrics), 900):
            c.log_batch(run_id, metrics=metrics[i:i + 900])
        _log_dataset(c, run_id, X, dataset_name, source, "training")
        _log_figure(c, run_id, _loss_figure(detector.history_), "plots/loss_curves.png")
        _log_figure(c, run_id, _score_figure(detector.decision_scores_, detector.threshold_,
                                             "Training scores"), "plots/score_histogram.png")
        top = np.argsort(detector.decision_scores_)[-max(1, len(X) // 20):]
        contrib = detector.explain(X.iloc[top])
        fig = _blame_figure(contrib, "Most blamed columns, top 5% of training rows")
        _log_figure(c, run_id, fig, "plots/top_blamed_columns.png")

        sample = _signature_frame(detector, X)
        info = _log_pyfunc(run_id, "detector", "DetectorModel", detector.save, sample,
                           detector.score_frame(sample))
        version, promoted = None, False
        if register_as:  # through the explicit client, not the fluent registry URI
            version, promoted = _register(c, register_as, info, run_id, gate)
        champion_version = _alias_version(c, register_as) if register_as else None
        c.set_tag(run_id, "genaug.gate", gate[:5000])
        if decision is not None:
            c.set_tag(run_id, "genaug.gate.decision", "promoted" if promoted else "kept champion")
            c.set_tag(run_id, "genaug.gate.champion", decision.champion_desc or "none")
            c.set_tag(run_id, "genaug.gate.validation_data", validation_source or "")
            c.log_dict(run_id, {**decision.to_dict(), "final_gate": gate, "promoted": promoted},
                       "gate/decision.json")
    return TrainingRecord(run_id, exp_id, info.model_uri, register_as, version, promoted, gate,
                          run_url(run_id, exp_id), champion_version,
                          None if decision is None else decision.to_dict())


def _alias_version(c: MlflowClient, name: str, alias: str = CHAMPION) -> int | None:
    """The version ``name@alias`` points to, or None (no such model or alias)."""
    try:
        rm = c.get_registered_model(name)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = rm.aliases.get(alias)
    return None if version is None else int(version)


@_scoped
def load_champion(
    name: str, alias: str = CHAMPION
) -> tuple[AnomalyDetector | None, str | None, str | None]:
    """The detector under ``models:/name@alias`` for the retrain gate.

    Returns ``(detector, description, None)``; ``(None, None, None)`` when there is no such
    model or alias yet; ``(None, description, reason)`` when it exists but cannot be loaded
    (a broken or foreign model folder): the gate then treats it as unusable.
    """
    c = client()
    version = _alias_version(c, name, alias)
    if version is None:
        return None, None, None
    desc = f"champion v{version}"
    try:
        detector, _ = load_detector(f"models:/{name}/{version}")
    except (GenaugInputError, ModelFormatError) as e:
        return None, desc, f"{type(e).__name__}: {e}"
    return detector, desc, None


# ---------------------------------------------------------------------------------- scoring
def _log_drift(c: MlflowClient, run_id: str, drift: DriftReport) -> None:
    c.set_tag(run_id, "genaug.drift", (
        f"drift in {', '.join(drift.drifted_columns)}" if drift.drifted_columns
        else ("no column drifted" if drift.available else drift.note))[:5000])
    table = pd.DataFrame(drift.table(), columns=["column", "kind", "psi", "level", "top_bin",
                                                 "expected_share", "actual_share"])
    c.log_text(run_id, table.to_csv(index=False), "drift/columns.csv")
    report = {"n_rows": drift.n_rows, "available": drift.available, "note": drift.note,
              "max_psi": drift.max_psi, "drifted_columns": drift.drifted_columns,
              "score_psi": drift.score_psi, "flag_rate": drift.flag_rate,
              "expected_flag_rate": drift.expected_flag_rate, "min_rows": drift.min_rows,
              "columns": drift.table()}
    report = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in report.items()}
    c.log_dict(run_id, report, "drift/drift.json")


@_scoped
def log_batch_run(
    counts: dict[str, float],
    files: list[dict[str, Any]],
    *,
    model_desc: str,
    incoming: str,
    experiment: str = SCORE_EXPERIMENT,
) -> tuple[str, str]:
    """Log one incoming-folder run: its totals as metrics, one row per file as
    ``batch/files.csv``. Returns (run_id, url)."""
    c = client()
    exp_id = experiment_id(c, experiment)
    with _run(c, exp_id, run_name=f"batch-{Path(incoming).name}",
              tags={"genaug.kind": "batch"}) as run_id:
        c.log_batch(run_id, params=[Param("model", model_desc[:6000]),
                                    Param("incoming", incoming[:6000])])
        now = int(time.time() * 1000)
        c.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in counts.items()])
        if files:
            c.log_text(run_id, pd.DataFrame(files).to_csv(index=False), "batch/files.csv")
    return run_id, run_url(run_id, exp_id)


@_scoped
def load_detector(ref: str | os.PathLike) -> tuple[AnomalyDetector, str]:
    """Load a detector from a model folder or an MLflow URI (``models:/name@champion``).

    Returns the detector and a description of what was loaded (name, version, run).
    """
    ref = str(ref)
    if "://" not in ref and not ref.startswith("models:/"):
        return AnomalyDetector.load(ref), f"folder {ref}"
    detector, mv = _load_registered(ref, "detector")
    return detector, f"{ref} (version {mv.version}, run {mv.run_id})"


def _model_version(ref: str) -> Any:
    """The registry entry of ``models:/name@alias`` or ``models:/name/version``."""
    c = client()
    if not ref.startswith("models:/"):
        raise ValueError(f"unsupported model reference {ref!r}: use a folder or models:/...")
    body = ref[len("models:/"):]
    if "@" in body:
        name, alias = body.split("@", 1)
        return c.get_model_version_by_alias(name, alias)
    if "/" in body:
        name, version = body.split("/", 1)
        return c.get_model_version(name, version)
    raise ValueError(f"model reference {ref!r} needs an alias (@champion) or a version")


@_scoped
def log_scoring_run(
    scores: pd.DataFrame,
    *,
    model_desc: str,
    input_file: str,
    output_file: str | None,
    threshold: float,
    extra_metrics: dict[str, float] | None = None,
    drift: DriftReport | None = None,
    experiment: str = SCORE_EXPERIMENT,
) -> tuple[str, str]:
    """Log one scoring job: counts, score quantiles and a histogram. Returns (run_id, url).

    ``scores`` may be a sample of the file's scores: pass the file's true ``n_rows``,
    ``n_flagged`` and ``flag_rate`` in ``extra_metrics``. With ``drift``, its metrics
    (``max_psi``, ``n_drifted_columns``, ``score_psi``, ``expected_flag_rate``) are logged too,
    the per-column table as ``drift/columns.csv`` and the report as ``drift/drift.json``.
    """
    c = client()
    exp_id = experiment_id(c, experiment)
    with _run(c, exp_id, run_name=f"score-{Path(input_file).name}",
              tags={"genaug.kind": "scoring"}) as run_id:
        params = {"model": model_desc, "input_file": input_file,
                  "output_file": output_file or "", "threshold": threshold}
        c.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        s = scores["score"].to_numpy()
        now = int(time.time() * 1000)
        m = {"n_rows": len(s), "n_flagged": int(scores["is_anomaly"].sum()),
             "flag_rate": float(scores["is_anomaly"].mean()),
             "score_median": float(np.median(s)), "score_p99": float(np.quantile(s, 0.99)),
             **(drift.metrics() if drift is not None else {}), **(extra_metrics or {})}
        c.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in m.items()])
        if drift is not None:
            _log_drift(c, run_id, drift)
        _log_figure(c, run_id, _score_figure(s, threshold, f"Scores of {Path(input_file).name}"),
                    "plots/score_histogram.png")
        contrib = scores[[col for col in scores.columns if col.startswith("contrib_")]]
        flagged = contrib[scores["is_anomaly"] == 1]
        if len(flagged) and flagged.shape[1]:
            _log_figure(c, run_id, _blame_figure(flagged.rename(columns=lambda x: x[8:]),
                                                 "Most blamed columns, flagged rows"),
                        "plots/top_blamed_columns.png")
    return run_id, run_url(run_id, exp_id)


# ---------------------------------------------------------------------------------- augmenter
class AugmenterModel(mlflow.pyfunc.PythonModel):
    """Registry wrapper: ``predict`` takes rows of (``label``, ``n``) and returns ``n``
    synthetic rows of each ``label`` (as text, matched to the classes), with a ``label``
    column."""

    def load_context(self, context: Any) -> None:
        self.augmenter = Augmenter.load(context.artifacts["augmenter"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        aug = self.augmenter
        classes = {str(c): c for c in aug.classes_.tolist()}
        frames = []
        for label, n in zip(model_input["label"].astype(str), model_input["n"].astype(int)):
            if label not in classes:
                raise GenaugInputError("unknown label", column="label",
                                       expected=f"one of {sorted(classes)}", found=repr(label))
            X, y = aug.sample(int(n), label=classes[label])
            frames.append(self._frame(X).assign(label=[str(v) for v in y]))
        return pd.concat(frames, ignore_index=True)

    def _frame(self, X: Any) -> pd.DataFrame:
        """Samples as the table ``predict`` returns."""
        return X


def _history_figure(history: list[dict[str, Any]]) -> plt.Figure:
    """Losses and validation C2ST per epoch (VAE) and per check (latent GAN)."""
    h = pd.DataFrame(history)
    phases = [p for p in ("vae", "gan") if "phase" in h and (h["phase"] == p).any()] or ["vae"]
    fig, axes = plt.subplots(2, len(phases), figsize=(5.5 * len(phases), 6), squeeze=False)
    for j, phase in enumerate(phases):
        g = h[h["phase"] == phase] if "phase" in h else h
        x = "gan_step" if phase == "gan" else "epoch"
        for key in [k for k in g.columns if k.endswith("loss")]:
            v = g.dropna(subset=[key])
            axes[0, j].plot(v[x], v[key], label=key)
        axes[0, j].set(title=f"{phase.upper()} losses", xlabel=x)
        axes[0, j].legend(fontsize=8)
        if "val_c2st" in g:
            v = g.dropna(subset=["val_c2st"])
            axes[1, j].plot(v[x], v["val_c2st"], marker="o")
        axes[1, j].axhline(0.5, color="grey", ls="--", lw=0.8)
        axes[1, j].set(title="validation C2ST AUC (0.5 = indistinguishable)", xlabel=x)
    fig.tight_layout()
    return fig


def _history_metrics(history: list[dict[str, Any]], now: int) -> list[Metric]:
    """Every number of every history record as ``<phase>_<key>``, stepped by epoch or
    generator step."""
    out = []
    for rec in history:
        phase = rec.get("phase", "vae")
        step = int(rec.get("gan_step", rec.get("epoch", 0)))
        for k, v in rec.items():
            if k in ("epoch", "step", "gan_step", "phase") or isinstance(v, (bool, str)):
                continue
            if isinstance(v, (int, float, np.number)) and math.isfinite(float(v)):
                out.append(Metric(f"{phase}_{k}", float(v), now, step))
    return out


def _register(c: MlflowClient, name: str, info: Any, run_id: str, gate: str) -> tuple[int, bool]:
    """A new version of ``name`` from a logged model; ``champion`` moves if the gate passed."""
    try:
        c.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        c.create_registered_model(name)
    mv = c.create_model_version(name, source=f"models:/{info.model_id}", run_id=run_id,
                                model_id=info.model_id)
    version = int(mv.version)
    c.set_model_version_tag(name, str(version), "genaug.gate", gate[:5000])
    c.set_model_version_tag(name, str(version), "genaug.run_id", run_id)
    if gate.startswith("passed"):
        c.set_registered_model_alias(name, CHAMPION, str(version))
        return version, True
    return version, False


def _registered(c: MlflowClient, exp_id: str, run_id: str, info: Any, register_as: str | None,
                gate: str) -> TrainingRecord:
    """Register the logged model (if ``register_as``), tag the run with its gate, and say
    what was written."""
    version, promoted = None, False
    if register_as:
        version, promoted = _register(c, register_as, info, run_id, gate)
    champion_version = _alias_version(c, register_as) if register_as else None
    c.set_tag(run_id, "genaug.gate", gate[:5000])
    return TrainingRecord(run_id, exp_id, info.model_uri, register_as, version, promoted, gate,
                          run_url(run_id, exp_id), champion_version)


@_scoped
def log_augmenter_training(
    augmenter: Augmenter,
    X: pd.DataFrame,
    y: Any,
    *,
    dataset_name: str,
    source: str | None = None,
    register_as: str | None = "genaug-augmenter",
    fidelity: FidelityReport | None = None,
    max_c2st: float = 0.9,
    fit_seconds: float | None = None,
    extra_params: dict[str, Any] | None = None,
    experiment: str = AUGMENTER_EXPERIMENT,
) -> TrainingRecord:
    """Log a fitted augmenter: params, per-epoch losses and C2ST, fidelity metrics and plots,
    the training table, the model; register it.

    ``champion`` moves to the new version when every loss is finite and, with ``fidelity``,
    its C2ST AUC is at most ``max_c2st`` (a generator a classifier tells from real rows almost
    perfectly is not promoted).
    """
    c = client()
    exp_id = experiment_id(c, experiment)
    with _run(c, exp_id, run_name=f"augmenter-{dataset_name}",
              tags={"genaug.kind": "augmenter-training",
                    "genaug.dataset": dataset_name}) as run_id:
        params = {**augmenter.get_params(), "n_rows": len(X),
                  "n_features": augmenter.n_features_in_,
                  "classes": ",".join(map(str, augmenter.classes_.tolist())),
                  "class_counts": ",".join(map(str, augmenter.class_counts_.tolist())),
                  "n_steps": augmenter.n_steps_, "best_epoch": augmenter.best_epoch_,
                  "n_dropped_anomalies": augmenter.n_dropped_, **(extra_params or {})}
        c.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        now = int(time.time() * 1000)
        metrics = _history_metrics(augmenter.history_, now)
        summary: dict[str, float] = {f"seconds_{k}": float(v)
                                     for k, v in getattr(augmenter, "timings_", {}).items()}
        if fit_seconds is not None:
            summary["fit_seconds"] = fit_seconds
        losses = [m.value for m in metrics if m.key.endswith("loss")]
        nonfinite = [r for r in augmenter.history_ for k, v in r.items()
                     if k.endswith("loss") and not math.isfinite(float(v))]
        gate = ("failed: non-finite training loss" if nonfinite or not losses
                else "passed: finite losses")
        if fidelity is not None:
            fd = {f"fidelity_{k}": v for k, v in fidelity.to_dict().items()
                  if not (isinstance(v, float) and math.isnan(v))}
            summary.update(fd)
            auc = fidelity.c2st.auc_mean if fidelity.c2st is not None else float("nan")
            if gate.startswith("passed") and auc > max_c2st:
                gate = f"failed: C2ST AUC {auc:.3f} above {max_c2st} (synthetic rows too easy " \
                       "to tell from real ones)"
            elif gate.startswith("passed") and math.isfinite(auc):
                gate = f"passed: finite losses, C2ST AUC {auc:.3f} <= {max_c2st}"
            for name, fig in fidelity.figures().items():
                c.log_figure(run_id, fig, f"plots/{name}")
            c.log_text(run_id, fidelity.marginals.to_csv(index=False),
                       "fidelity/marginals.csv")
        metrics += [Metric(k, float(v), now, 0) for k, v in summary.items()]
        for i in range(0, len(metrics), 900):
            c.log_batch(run_id, metrics=metrics[i:i + 900])
        labelled = X.reset_index(drop=True).assign(**{"__label__": np.asarray(y)})
        _log_dataset(c, run_id, labelled, dataset_name, source, "training")
        if augmenter.history_:
            _log_figure(c, run_id, _history_figure(augmenter.history_),
                        "plots/training_curves.png")
        example = pd.DataFrame({"label": [str(augmenter.classes_[0])], "n": [3]})
        wrapper = AugmenterModel()
        wrapper.augmenter = augmenter
        info = _log_pyfunc(run_id, "augmenter", "AugmenterModel", augmenter.save, example,
                           wrapper.predict(None, example))
        rec = _registered(c, exp_id, run_id, info, register_as, gate)
    return rec


@_scoped
def load_augmenter(ref: str | os.PathLike) -> tuple[Augmenter, dict[str, Any]]:
    """Load an augmenter from a folder or ``models:/name@alias`` / ``models:/name/version``.

    Returns it and what was loaded (``ref``, ``name``, ``version``, ``run_id``; None for a
    folder).
    """
    ref = str(ref)
    if not ref.startswith("models:/"):
        return Augmenter.load(ref), {"ref": ref, "name": None, "version": None, "run_id": None}
    augmenter, mv = _load_registered(ref, "augmenter")
    return augmenter, {"ref": ref, "name": mv.name, "version": int(mv.version),
                       "run_id": mv.run_id}


# ---------------------------------------------------------------------------------- datasets
@_scoped
def log_augmented_dataset(
    frame: pd.DataFrame,
    manifest: Manifest,
    *,
    log_file: bool = True,
    experiment: str = AUGMENT_EXPERIMENT,
) -> tuple[str, str]:
    """Log an augmented table: the source and the output as datasets, the manifest, row
    counts, and (``log_file``) the Parquet file itself as an artifact. Returns (run_id, url)."""
    c = client()
    exp_id = experiment_id(c, experiment)
    out = Path(manifest.output)
    with _run(c, exp_id, run_name=f"augment-{Path(manifest.source).stem}",
              tags={"genaug.kind": "augmented-dataset",
                    "genaug.model": str(manifest.model.get("ref"))}) as run_id:
        params = {"source": manifest.source, "source_sha256": manifest.source_sha256,
                  "output": manifest.output, "output_sha256": manifest.output_sha256,
                  "target": manifest.target, "seed": manifest.seed,
                  "sampling_strategy": manifest.sampling_strategy,
                  **{f"model_{k}": v for k, v in manifest.model.items()}}
        c.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        now = int(time.time() * 1000)
        m = {"rows_real": manifest.rows_real, "rows_synthetic": manifest.rows_synthetic,
             "rows_total": manifest.rows_total,
             **{f"synthetic.{_metric_key(k)}": v for k, v in manifest.synthetic_by_class.items()}}
        c.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in m.items()])
        from .augmented import SYNTHETIC_COLUMN

        real = frame[~frame[SYNTHETIC_COLUMN]].drop(columns=[SYNTHETIC_COLUMN])
        _log_dataset(c, run_id, real, Path(manifest.source).stem, manifest.source, "source")
        _log_dataset(c, run_id, frame, out.stem, str(out.resolve()), "augmented")
        c.log_dict(run_id, manifest.to_dict(), "augmented/manifest.json")
        if log_file:
            c.log_artifact(run_id, str(out), "augmented")
    return run_id, run_url(run_id, exp_id)


def _metric_key(v: Any) -> str:
    """A name as text that MLflow accepts in a metric or tag name."""
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", str(v))


# ---------------------------------------------------------------------------------- evaluation
@_scoped
def log_evaluation(
    result: EvaluationResult,
    *,
    dataset_name: str,
    source: str | None = None,
    data: pd.DataFrame | None = None,
    params: dict[str, Any] | None = None,
    experiment: str = EVALUATION_EXPERIMENT,
) -> tuple[str, str]:
    """Log an augmentation evaluation: one parent run (config, mean metrics with CIs and
    differences to the baseline, verdicts, summary table, chart) and a child run per
    arm x classifier x split (its test metrics). Returns (parent run_id, url)."""
    c = client()
    exp_id = experiment_id(c, experiment)
    with _run(c, exp_id, run_name=f"evaluate-{dataset_name}",
              tags={"genaug.kind": "augmentation-evaluation",
                    "genaug.dataset": dataset_name}) as pid:
        cfg = {**result.config, **(params or {})}
        c.log_batch(pid, params=[Param(k, str(v)[:6000]) for k, v in cfg.items()])
        now = int(time.time() * 1000)
        metrics = [Metric(_metric_key(k), v, now, 0) for k, v in result.to_dict().items()
                   if math.isfinite(v)]
        for i in range(0, len(metrics), 900):
            c.log_batch(pid, metrics=metrics[i:i + 900])
        summary = result.summary()
        c.log_text(pid, summary.to_csv(index=False), "evaluation/summary.csv")
        c.log_text(pid, result.records.to_csv(index=False), "evaluation/records.csv")
        c.log_text(pid, result.to_markdown(), "evaluation/summary.md")
        if result.baseline is not None and (result.records["arm"] != result.baseline).any():
            v = result.verdicts()
            c.log_table(pid, v, "evaluation/verdicts.json")
            for r in v.itertuples():
                tag = f"verdict.{_metric_key(r.arm)}.{_metric_key(r.classifier)}"
                c.set_tag(pid, tag, r.verdict)
            fig = result.figure()
            c.log_figure(pid, fig, "plots/pr_auc_difference.png")
        if data is not None:
            _log_dataset(c, pid, data, dataset_name, source, "evaluation")
        skip = {"arm", "classifier", "split", "seed"}
        for r in result.records.to_dict("records"):
            child = c.create_run(
                exp_id, run_name=f"{r['arm']}/{r['classifier']}/split{r['split']}",
                tags={"mlflow.parentRunId": pid, "genaug.kind": "augmentation-evaluation-split",
                      "genaug.arm": str(r["arm"]), "genaug.classifier": str(r["classifier"])})
            cid = child.info.run_id
            c.log_batch(cid, params=[Param("arm", str(r["arm"])),
                                     Param("classifier", str(r["classifier"])),
                                     Param("split", str(r["split"])),
                                     Param("seed", str(r["seed"])),
                                     Param("ratio", str(r.get("ratio")))],
                        metrics=[Metric(k, float(v), now, 0) for k, v in r.items()
                                 if k not in skip and isinstance(v, (int, float, np.number))
                                 and not isinstance(v, bool) and math.isfinite(float(v))])
            c.set_terminated(cid, "FINISHED")
    return pid, run_url(pid, exp_id)


# ---------------------------------------------------------------------------------- images
IMAGE_EXPERIMENT = "genaug-images"


def _mosaic(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """``rows x cols x C x H x W`` floats in [0, 1] -> one ``uint8`` RGB mosaic image."""
    r, cl, ch, h, w = images.shape
    out = np.ones((r * (h + pad) + pad, cl * (w + pad) + pad, 3), dtype=np.float32)
    for i in range(r):
        for j in range(cl):
            img = images[i, j].transpose(1, 2, 0)
            img = np.repeat(img, 3, axis=2) if ch == 1 else img[..., :3]
            y0, x0 = pad + i * (h + pad), pad + j * (w + pad)
            out[y0:y0 + h, x0:x0 + w] = img
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def _overlay_figure(images: np.ndarray, maps: np.ndarray, scores: np.ndarray,
                    threshold: float) -> plt.Figure:
    """Each image (grey or RGB) with its anomaly map as a heat overlay, score in the title."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 0.4, 3.6), squeeze=False)
    for i in range(n):
        img = images[i].transpose(1, 2, 0)
        kw = {"cmap": "gray", "vmin": 0, "vmax": 1} if img.shape[2] == 1 else {}
        show = img[..., 0] if img.shape[2] == 1 else img
        axes[0, i].imshow(show, **kw)
        axes[0, i].set_title(f"{scores[i]:.3g}" + (" *" if scores[i] > threshold else ""),
                             fontsize=8)
        axes[1, i].imshow(show, **kw)
        axes[1, i].imshow(maps[i], cmap="inferno", alpha=0.6)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle("Most anomalous images (top) and their anomaly maps (* = flagged)", fontsize=9)
    fig.tight_layout()
    return fig


def pixel_frame(images: np.ndarray) -> pd.DataFrame:
    """Floats N x C x H x W in [0, 1] -> one row per image, columns ``px_<i>`` in row-major
    H x W (x C) order: the tabular form the image pyfuncs take and give."""
    flat = images.transpose(0, 2, 3, 1).reshape(len(images), -1).astype(np.float64)
    return pd.DataFrame(flat, columns=[f"px_{i}" for i in range(flat.shape[1])])


def _pixel_images(frame: pd.DataFrame, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pixel_frame`: N x H x W (grey) or N x H x W x C floats."""
    from .errors import ImageShapeError

    c, h, w = shape
    arr = np.asarray(frame, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != c * h * w:
        raise ImageShapeError("pixel table width does not match the model's images",
                              expected=f"{c * h * w} pixel columns ({h}x{w}x{c})",
                              found=f"{arr.shape[1] if arr.ndim == 2 else arr.shape} columns")
    return arr.reshape(len(arr), h, w) if c == 1 else arr.reshape(len(arr), h, w, c)


class ImageDetectorModel(mlflow.pyfunc.PythonModel):
    """Registry wrapper of an image detector: ``predict`` takes a :func:`pixel_frame` (one row
    per image, floats in [0, 1]) and returns ``score``, ``is_anomaly`` and the row/column of
    each image's anomaly-map peak."""

    def load_context(self, context: Any) -> None:
        from .image_detector import ImageAnomalyDetector

        self.detector = ImageAnomalyDetector.load(context.artifacts["image_detector"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        det = self.detector
        x = _pixel_images(model_input, det.image_shape_)
        scores = det.decision_function(x)
        maps = det.explain(x)
        peaks = np.array([np.unravel_index(int(np.argmax(m)), m.shape) for m in maps])
        return pd.DataFrame({"score": scores, "is_anomaly": (scores > det.threshold_).astype(int),
                             "peak_row": peaks[:, 0], "peak_col": peaks[:, 1]})


class ImageAugmenterModel(AugmenterModel):
    """Registry wrapper of an image augmenter: ``predict`` takes rows of (``label``, ``n``)
    and returns ``n`` generated images of each label as a :func:`pixel_frame` plus a
    ``label`` column."""

    def load_context(self, context: Any) -> None:
        from .image_augmenter import ImageAugmenter

        self.augmenter = ImageAugmenter.load(context.artifacts["image_augmenter"])

    def _frame(self, X: Any) -> pd.DataFrame:
        return pixel_frame(_as_unit(X, self.augmenter))


def _finite_gate(history: list[dict[str, Any]]) -> tuple[str, bool]:
    losses = [float(v) for r in history for k, v in r.items() if k.endswith("loss")]
    ok = bool(losses) and all(math.isfinite(v) for v in losses)
    return ("passed: finite losses" if ok else "failed: non-finite training loss"), ok


@_scoped
def log_image_detector(
    detector: Any,
    X: Any,
    *,
    dataset_name: str,
    source: str | None = None,
    register_as: str | None = "genaug-image-detector",
    top: int = 8,
    fit_seconds: float | None = None,
    experiment: str = IMAGE_EXPERIMENT,
    run_name: str | None = None,
) -> TrainingRecord:
    """Log a fitted :class:`~genaug.image_detector.ImageAnomalyDetector`: params, per-epoch
    losses, threshold, a score histogram of ``X``, heat-map overlays of the ``top`` most
    anomalous images of ``X`` (``plots/top_anomalies.png``) and the model (pyfunc
    :class:`ImageDetectorModel`); register it as ``register_as``, whose ``champion`` alias
    moves to it when every loss is finite."""
    from .images import to_unit_array

    c = client()
    exp_id = experiment_id(c, experiment)
    with _run(c, exp_id, run_name=run_name or f"image-detector-{dataset_name}",
              tags={"genaug.kind": "image-detector", "genaug.dataset": dataset_name}) as run_id:
        params = {**detector.get_params(), "image_shape": detector.image_shape_,
                  "dataset": dataset_name, "source": source or "", "n_images": len(X)}
        c.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(r["step"]))
                   for r in detector.history_ for k, v in r.items()
                   if k in ("train_loss", "val_loss") and math.isfinite(v)]
        scores = detector.decision_function(X)
        metrics += [Metric("threshold", detector.threshold_, now, 0),
                    Metric("flag_rate", float(np.mean(scores > detector.threshold_)), now, 0)]
        if fit_seconds is not None:
            metrics.append(Metric("fit_seconds", float(fit_seconds), now, 0))
        for i in range(0, len(metrics), 900):
            c.log_batch(run_id, metrics=metrics[i:i + 900])
        _log_figure(c, run_id, _score_figure(scores, detector.threshold_,
                                             f"Scores of {dataset_name}"),
                    "plots/score_histogram.png")
        _log_dataset(c, run_id, np.asarray(X), dataset_name, source, "training")
        units = to_unit_array(X)
        order = np.argsort(-scores)[:top]
        maps = detector.explain(units[order].transpose(0, 2, 3, 1))
        _log_figure(c, run_id, _overlay_figure(units[order], maps, scores[order],
                                               detector.threshold_),
                    "plots/top_anomalies.png")
        gate, _ = _finite_gate(detector.history_)
        wrapper = ImageDetectorModel()
        wrapper.detector = detector
        example = pixel_frame(units[:5])
        info = _log_pyfunc(run_id, "image_detector", "ImageDetectorModel", detector.save,
                           example, wrapper.predict(None, example))
        rec = _registered(c, exp_id, run_id, info, register_as, gate)
    return rec


@_scoped
def log_image_augmenter(
    augmenter: Any,
    *,
    dataset_name: str,
    source: str | None = None,
    X: Any = None,
    y: Any = None,
    register_as: str | None = "genaug-image-augmenter",
    min_class_share: float = 0.5,
    n_per_class: int = 8,
    experiment: str = IMAGE_EXPERIMENT,
    run_name: str | None = None,
) -> TrainingRecord:
    """Log a fitted :class:`~genaug.image_augmenter.ImageAugmenter`: params, per-epoch losses,
    the held-out checks (``class_share``, ``c2st_auc``...), a sample grid per class per epoch
    (the ``samples`` image series in the UI, one row per class, stepped by epoch) and one of
    the kept generator (``samples/selected.png``), and the model (pyfunc
    :class:`ImageAugmenterModel`); register it as ``register_as``. ``champion`` moves to it
    when every loss is finite and the kept generator's held-out class share is at least
    ``min_class_share``. With ``X`` (and ``y``), the training images are logged as the run's
    dataset."""

    c = client()
    exp_id = experiment_id(c, experiment)
    with _run(c, exp_id, run_name=run_name or f"image-augmenter-{dataset_name}",
              tags={"genaug.kind": "image-augmenter", "genaug.dataset": dataset_name}) as run_id:
        params = {**augmenter.get_params(), "classes": list(augmenter.classes_),
                  "class_counts": list(augmenter.class_counts_), "source": source or "",
                  "selected_step": augmenter.selected_["step"], "dataset": dataset_name}
        c.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        now = int(time.time() * 1000)
        keys = ("d_loss", "g_loss", "class_share", "class_share_min", "c2st_auc",
                "selection_score")
        metrics = [Metric(k, float(v), now, int(r["step"])) for r in augmenter.history_
                   for k, v in r.items() if k in keys and math.isfinite(v)]
        metrics += [Metric(f"selected_{k}", float(augmenter.selected_[k]), now, 0)
                    for k in keys[2:] if k in augmenter.selected_]
        for i in range(0, len(metrics), 900):
            c.log_batch(run_id, metrics=metrics[i:i + 900])
        if X is not None:
            _log_dataset(c, run_id, np.asarray(X), dataset_name, source, "training", y)
        for epoch, grid in getattr(augmenter, "epoch_grids_", []):
            c.log_image(run_id, _mosaic(grid.astype(np.float32) / 255.0), key="samples",
                        step=int(epoch), synchronous=True)
        rows = [_as_unit(augmenter.sample(n_per_class, label=label)[0], augmenter)
                for label in augmenter.classes_]
        c.log_image(run_id, _mosaic(np.stack(rows)), artifact_file="samples/selected.png")
        gate, ok = _finite_gate(augmenter.history_)
        share = float(augmenter.selected_.get("class_share", float("nan")))
        if ok and not share >= min_class_share:
            gate = (f"failed: held-out class share {share:.3f} below {min_class_share} (samples "
                    "mostly not of the requested class)")
        elif ok:
            gate = f"passed: finite losses, held-out class share {share:.3f} >= {min_class_share}"
        wrapper = ImageAugmenterModel()
        wrapper.augmenter = augmenter
        example = pd.DataFrame({"label": [str(augmenter.classes_[0])], "n": [2]})
        info = _log_pyfunc(run_id, "image_augmenter", "ImageAugmenterModel", augmenter.save,
                           example, wrapper.predict(None, example))
        rec = _registered(c, exp_id, run_id, info, register_as, gate)
    return rec


def _load_image_model(ref: str | os.PathLike, cls: Any, attr: str) -> tuple[Any, str]:
    ref = str(ref)
    if not ref.startswith("models:/"):
        return cls.load(ref), f"folder {ref}"
    model, mv = _load_registered(ref, attr)
    return model, f"{ref} (version {mv.version}, run {mv.run_id})"


@_scoped
def load_image_detector(ref: str | os.PathLike) -> tuple[Any, str]:
    """An image detector from a folder or ``models:/name@alias`` / ``models:/name/version``,
    and a description of what was loaded."""
    from .image_detector import ImageAnomalyDetector

    return _load_image_model(ref, ImageAnomalyDetector, "detector")


@_scoped
def load_image_augmenter(ref: str | os.PathLike) -> tuple[Any, str]:
    """An image augmenter from a folder or a ``models:/`` reference, and a description."""
    from .image_augmenter import ImageAugmenter

    return _load_image_model(ref, ImageAugmenter, "augmenter")


@_scoped
def log_image_scoring_run(scores: pd.DataFrame, detector: Any, X: Any, *, model_desc: str,
                          input_file: str, output_file: str | None,
                          top: int = 8) -> tuple[str, str]:
    """:func:`log_scoring_run` for images, plus heat-map overlays of the ``top`` highest
    scoring images of ``X`` (``plots/top_anomalies.png``). Returns (run_id, url)."""
    from .images import to_unit_array

    run_id, url = log_scoring_run(scores, model_desc=model_desc, input_file=input_file,
                                  output_file=output_file, threshold=detector.threshold_)
    s = scores["score"].to_numpy()
    order = np.argsort(-s)[:top]
    units = to_unit_array(np.asarray(X)[order])
    maps = detector.explain(units.transpose(0, 2, 3, 1))
    _log_figure(client(), run_id, _overlay_figure(units, maps, s[order], detector.threshold_),
                "plots/top_anomalies.png")
    return run_id, url


def _as_unit(xs: Any, augmenter: Any) -> np.ndarray:
    """Samples in the augmenter's output layout -> floats N x C x H x W in [0, 1]."""
    arr = np.asarray(xs, dtype=np.float64)
    if augmenter.output_format_["kind"] == "uint8":
        arr = arr / 255.0
    return arr.reshape(len(arr), *augmenter.image_shape_) if arr.ndim == 2 else (
        arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2))
