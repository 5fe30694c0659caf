"""Flow ``augment``: a table in, the same table plus synthetic rows (``is_synthetic``) out.

Fits an :class:`~genaug.Augmenter` on the table (or loads one from the registry or a folder),
measures its fidelity on its own held-out rows, registers it in MLflow, and writes
``<out>`` (Parquet) with a manifest beside it (source digest, model version, seed, row counts),
both logged to MLflow as a dataset and artifacts.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from genaug import Augmenter, read_table
from genaug.augmented import (
    Manifest,
    augment_frame,
    class_key,
    manifest_path,
    split_target,
    write_augmented,
)
from genaug.images import is_image_source
from genaug.ledger import file_digest
from pipelines._retry import retry_unless_bad_input


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input,
      cache_policy=NO_CACHE)
def fit_augmenter(data: str, target: str, params: dict[str, Any], model_dir: str,
                  fidelity: bool) -> dict[str, Any]:
    """Fit an augmenter on ``data`` and save it; fidelity on its held-out validation rows."""
    from genaug.fidelity import fidelity_report
    from genaug.tracking import check_store

    logger = get_run_logger()
    check_store()  # fail (and retry) before a fit whose result could not be logged
    X, y = split_target(read_table(data), target, data)
    t0 = time.perf_counter()
    aug = Augmenter(**params).fit(X, y)
    seconds = time.perf_counter() - t0
    aug.save(model_dir)
    logger.info("fitted a %s augmenter on %d rows in %.1f s", aug.model, len(X), seconds)
    out: dict[str, Any] = {"model_dir": model_dir, "fit_seconds": seconds, "fidelity": None}
    val = aug.validation_index_
    if fidelity and len(val):
        train = X.drop(index=X.index[val])
        hold = X.iloc[val]
        y_hold = y.iloc[val].to_numpy()
        synth, y_syn = aug.sample(max(len(val), 500), random_state=0)
        out["fidelity"] = fidelity_report(
            train, synth.set_axis(list(X.columns), axis=1), hold,
            y_train=y.drop(index=y.index[val]).to_numpy(), y_synth=y_syn, y_holdout=y_hold)
    return out


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input,
      cache_policy=NO_CACHE)
def register_augmenter(data: str, target: str, fitted: dict[str, Any],
                       model_name: str) -> dict[str, Any]:
    """Log the fitted augmenter to MLflow and register it as ``model_name``."""
    from genaug import tracking

    tracking.check_store()
    X, y = split_target(read_table(data), target, data)
    aug = Augmenter.load(fitted["model_dir"])
    rec = tracking.log_augmenter_training(
        aug, X, y.to_numpy(), dataset_name=Path(data).stem, source=str(Path(data).resolve()),
        register_as=model_name, fidelity=fitted["fidelity"], fit_seconds=fitted["fit_seconds"])
    return rec.__dict__


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input,
      cache_policy=NO_CACHE)
def load_augmenter(model: str) -> tuple[Augmenter, dict[str, Any]]:
    """A registered (``models:/name@alias``) or saved (folder) augmenter."""
    from genaug import tracking

    if model.startswith("models:/"):
        tracking.check_store()
    return tracking.load_augmenter(model)


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input,
      cache_policy=NO_CACHE)
def write_dataset(data: str, target: str, aug: Augmenter, model_info: dict[str, Any], out: str,
                  sampling_strategy: Any, seed: int | None, log_to_mlflow: bool
                  ) -> dict[str, Any]:
    """Validate the table against the augmenter, add synthetic rows, write file and manifest."""
    logger = get_run_logger()
    df = read_table(data)
    X, y = split_target(df, target, data)
    aug.schema_.validate(X, file=data, handle_unknown="keep")  # the augmenter's columns/types
    frame, counts = augment_frame(X, y, aug, sampling_strategy, random_state=seed)
    manifest = Manifest(
        source=str(Path(data)), source_sha256=file_digest(data), output=out, target=target,
        seed=seed, sampling_strategy=sampling_strategy, model={**model_info, "kind": aug.model},
        rows_real=len(X), rows_synthetic=int(sum(counts.values())),
        class_counts_real={class_key(k): int(v) for k, v in y.value_counts().items()},
        synthetic_by_class={class_key(k): v for k, v in counts.items()})
    write_augmented(frame, out, manifest)
    logger.info("wrote %s: %d real + %d synthetic rows (%s)", out, manifest.rows_real,
                manifest.rows_synthetic, manifest.synthetic_by_class)
    res = {"output": out, "manifest": str(manifest_path(out)), **manifest.to_dict()}
    if log_to_mlflow:
        from genaug import tracking

        res["run_id"], res["url"] = tracking.log_augmented_dataset(frame, manifest)
    return res


DEFAULT_OUT = "data/augmented/adult_train.augmented.parquet"


@flow(name="augment", log_prints=True)
def augment(
    data: str = "data/sample/adult_train.parquet",
    target: str = "income",
    out: str = DEFAULT_OUT,
    model: str | None = None,
    model_name: str = "genaug-augmenter",
    sampling_strategy: Any = "auto",
    random_state: int = 0,
    params: dict[str, Any] | None = None,
    fidelity: bool = True,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Write ``out``: the rows of ``data`` plus synthetic rows marked ``is_synthetic``.

    ``model=None`` fits a new augmenter on ``data`` (``params`` go to
    :class:`~genaug.Augmenter`), logs it with its fidelity report and registers it as
    ``model_name`` (``champion`` moves when its losses are finite and its C2ST AUC is at most
    0.9); otherwise ``model`` is ``models:/name@alias`` or a saved folder. ``sampling_strategy``
    says how many rows to add, as in imbalanced-learn ("auto": every class up to the
    majority's count; 0.5: the minority up to half the majority; ``{"label": n}``).

    A folder or ``.npz`` of labelled images goes to the image flow ``augment-images`` (the
    image GAN; ``out`` then defaults to ``data/augmented/<stem>.augmented.npz``).
    """
    if is_image_source(data):
        from pipelines.images import IMAGE_AUGMENTER, augment_images

        if out == DEFAULT_OUT:
            out = str(Path("data/augmented") / f"{Path(data).stem}.augmented.npz")
        p = dict(params or {})
        if sampling_strategy != "auto":
            p["sampling_strategy"] = sampling_strategy
        return augment_images(
            data=data, out=out, model=model, random_state=random_state, params=p,
            model_name=IMAGE_AUGMENTER if model_name == "genaug-augmenter" else model_name)
    info: dict[str, Any]
    with tempfile.TemporaryDirectory(prefix="genaug-augmenter-") as tmp:
        if model is None:
            p = {"random_state": random_state, "verbose": True, **(params or {})}
            fitted = fit_augmenter(data, target, p, str(Path(tmp) / "augmenter"), fidelity)
            if log_to_mlflow:
                rec = register_augmenter(data, target, fitted, model_name)
                model_ref = f"models:/{model_name}/{rec['version']}"
                info = {"ref": model_ref, "name": model_name, "version": rec["version"],
                        "run_id": rec["run_id"], "gate": rec["gate"]}
            else:
                model_ref = fitted["model_dir"]
                info = {"ref": None, "name": None, "version": None, "run_id": None}
            aug = Augmenter.load(fitted["model_dir"])
        else:
            aug, info = load_augmenter(model)
        res = write_dataset(data, target, aug, info, out, sampling_strategy, random_state,
                            log_to_mlflow)
    if model is None and log_to_mlflow:
        res["training"] = rec
    create_markdown_artifact(key="augmented-dataset", markdown=_summary(res))
    return res


def _summary(res: dict[str, Any]) -> str:
    by_class = ", ".join(f"`{k}`: {v}" for k, v in res["synthetic_by_class"].items()) or "none"
    model = res["model"]
    md = (f"### Augmented dataset `{res['output']}`\n\n| item | value |\n|---|---|\n"
          f"| source | `{res['source']}` (sha256 {res['source_sha256'][:12]}…) |\n"
          f"| real rows | {res['rows_real']} |\n| synthetic rows | {res['rows_synthetic']} "
          f"({by_class}) |\n| model | {model.get('ref') or 'fitted, not registered'} "
          f"({model.get('kind')}) |\n| seed | {res['seed']} |\n"
          f"| manifest | `{res['manifest']}` |\n")
    if res.get("url"):
        md += f"| MLflow run | {res['url']} |\n"
    return md


if __name__ == "__main__":
    augment()
