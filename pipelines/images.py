"""Image flows: ``train-image-detector``, ``score-images`` (incoming folder with ledger and
quarantine), ``score-image-data`` (a folder or ``.npz`` scored in place), ``augment-images``
and ``evaluate-image-augmentation``. The generic flows (``train-detector``, ``score``,
``augment``, ``evaluate-augmentation``) hand image inputs to these.

Thin tasks over :mod:`genaug.images`, :mod:`genaug.image_detector`, :mod:`genaug.image_batch`,
:mod:`genaug.image_augmenter` and :mod:`genaug.image_evaluation`; MLflow through
:mod:`genaug.tracking`. Image sources: a class-folder tree, a folder plus labels CSV, or an
``.npz`` (see :func:`genaug.images.read_images`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from genaug.image_augmenter import ImageAugmenter
from genaug.image_batch import score_image_folder
from genaug.image_detector import ImageAnomalyDetector
from genaug.images import read_images
from genaug.io import atomic_path
from pipelines._retry import retry_unless_bad_input


def _size(size: list[int] | tuple[int, int] | None) -> tuple[int, int] | None:
    return None if size is None else (int(size[0]), int(size[1]))


IMAGE_DETECTOR = "genaug-image-detector"
IMAGE_AUGMENTER = "genaug-image-augmenter"


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def fit_image_detector(data: str, labels: str | None, size: Any, params: dict[str, Any],
                       model_name: str | None, model_dir: str | None,
                       normal_class: Any = None) -> dict[str, Any]:
    """Read the images (only ``normal_class`` if given), fit the detector, log and register
    it (and save it to ``model_dir`` if given)."""
    from genaug import tracking

    logger = get_run_logger()
    tracking.check_store()
    s = read_images(data, labels=labels, size=_size(size))
    X = s.X if normal_class is None else s.X[np.asarray(s.y).astype(str) == str(normal_class)]
    if not len(X):
        raise ValueError(f"{data}: no images of class {normal_class!r}")
    t0 = time.perf_counter()
    det = ImageAnomalyDetector(**params).fit(X, file=data)
    secs = time.perf_counter() - t0
    if model_dir:
        det.save(model_dir)
    rec = tracking.log_image_detector(det, X, dataset_name=Path(data).stem,
                                      source=str(Path(data).resolve()),
                                      register_as=model_name, fit_seconds=secs)
    logger.info("image detector fitted on %d images %s in %.1f s; threshold %.4g; %s v%s (%s); "
                "%s", len(X), det.image_shape_, secs, det.threshold_, model_name, rec.version,
                rec.gate, rec.url)
    return {"model_dir": model_dir, "n_images": len(X), "fit_seconds": secs,
            "threshold": det.threshold_, "run_id": rec.run_id, "url": rec.url,
            "registered_name": rec.registered_name, "version": rec.version,
            "promoted": rec.promoted, "gate": rec.gate, "model_uri": rec.model_uri}


@flow(name="train-image-detector", log_prints=True)
def train_image_detector(
    data: str = "data/sample/digits_8x8.npz",
    model_name: str | None = IMAGE_DETECTOR,
    model_dir: str | None = None,
    labels: str | None = None,
    size: list[int] | None = None,
    normal_class: str | None = None,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit an :class:`ImageAnomalyDetector` on the images in ``data``, log it and register it
    as ``model_name`` (``champion`` moves when its losses are finite); ``model_dir`` also
    saves it as a folder."""
    p = {"random_state": random_state, **(params or {})}
    rec = fit_image_detector(data, labels, size, p, model_name, model_dir, normal_class)
    create_markdown_artifact(
        key="image-detector-training",
        markdown=(f"### Image detector trained on `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| images | {rec['n_images']} |\n| fit seconds | {rec['fit_seconds']:.1f} |\n"
                  f"| threshold | {rec['threshold']:.4g} |\n"
                  f"| model | {rec['registered_name']} v{rec['version']} ({rec['gate']}) |\n"
                  f"| MLflow run | {rec['url']} |\n"))
    return rec


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def score_folder(incoming: str, model: str, out: str, processed: str, quarantine: str,
                 ledger: str, resize: bool, min_age: float, stale_after: float) -> dict[str, Any]:
    """Score every image in ``incoming`` once; bad files go to ``quarantine`` with a reason."""
    from genaug import tracking
    from genaug.ledger import Ledger

    logger = get_run_logger()
    det, desc = tracking.load_image_detector(model)
    res = score_image_folder(incoming, det, out=out, processed=processed, quarantine=quarantine,
                             ledger=Ledger(ledger, stale_after=stale_after), resize=resize,
                             min_age=min_age)
    logger.info("%s with %s", res.summary(), desc)
    return {"model": desc, "scored": res.scored, "quarantined": res.quarantined,
            "duplicates": res.duplicates, "skipped": res.skipped, "failed": res.failed,
            "output": res.output, "n_flagged": res.n_flagged}


@flow(name="score-images", log_prints=True)
def score_images(
    incoming: str = "data/images/incoming",
    model: str = f"models:/{IMAGE_DETECTOR}@champion",
    out: str = "data/images/scores",
    processed: str = "data/images/processed",
    quarantine: str = "data/images/quarantine",
    ledger: str = "data/images/ledger.sqlite",
    resize: bool = False,
    min_age: float = 2.0,
    stale_after: float = 3600.0,
) -> dict[str, Any]:
    """Score the images now in ``incoming`` with ``model`` (a registry URI or a folder); each
    content is scored once (``ledger``), bad files are quarantined with a reason."""
    res = score_folder(incoming, model, out, processed, quarantine, ledger, resize, min_age,
                       stale_after)
    create_markdown_artifact(
        key="image-scoring",
        markdown=(f"### Scored images in `{incoming}`\n\n| item | value |\n|---|---|\n"
                  f"| model | {res['model']} |\n"
                  f"| scored | {len(res['scored'])} |\n| flagged | {res['n_flagged']} |\n"
                  f"| already handled | {len(res['duplicates'])} |\n"
                  f"| quarantined | {', '.join(res['quarantined']) or 'none'} |\n"
                  f"| scores file | `{res['output']}` |\n"))
    return res


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def score_source(data: str, model: str, out: str, labels: str | None,
                 resize: bool) -> dict[str, Any]:
    """Score the images of ``data`` in place, write ``out``, log an MLflow scoring run."""
    from genaug import tracking
    from genaug.image_batch import score_image_source

    tracking.check_store()
    det, desc = tracking.load_image_detector(model)
    frame, images = score_image_source(data, det, out, labels=labels, resize=resize)
    run_id, url = tracking.log_image_scoring_run(frame, det, images,
                                                 model_desc=desc, input_file=data,
                                                 output_file=out)
    return {"model": desc, "output": out, "n_rows": len(frame),
            "n_flagged": int(frame["is_anomaly"].sum()), "run_id": run_id, "url": url}


@flow(name="score-image-data", log_prints=True)
def score_image_data(
    data: str = "data/sample/digits_8x8.npz",
    model: str = f"models:/{IMAGE_DETECTOR}@champion",
    out: str | None = None,
    labels: str | None = None,
    resize: bool = False,
) -> dict[str, Any]:
    """Score every image of ``data`` (a folder, an ``.npz`` or one image) without moving
    anything; scores to ``out`` (default ``data/scores/<stem>.scores.parquet``)."""
    out = out or str(Path("data/scores") / f"{Path(data).stem}.scores.parquet")
    res = score_source(data, model, out, labels, resize)
    create_markdown_artifact(
        key="image-scoring",
        markdown=(f"### Scored images of `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| model | {res['model']} |\n| images | {res['n_rows']} |\n"
                  f"| flagged | {res['n_flagged']} |\n| scores file | `{out}` |\n"
                  f"| MLflow run | {res['url']} |\n"))
    return res


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def fit_augment(data: str, labels: str | None, size: Any, params: dict[str, Any], out: str,
                model: str | None, model_name: str | None) -> dict[str, Any]:
    """Fit the image GAN on labelled images (or load ``model``), write real + generated
    images to ``out`` (.npz, atomically); a fitted GAN is logged and registered."""
    from genaug import tracking

    tracking.check_store()
    s = read_images(data, labels=labels, size=_size(size))
    if s.y is None:
        raise ValueError(f"{data}: augmentation needs class labels (subfolders or a CSV)")
    info: dict[str, Any]
    if model is None:
        aug = ImageAugmenter(**params)
        X_res, y_res = aug.fit_resample(s.X, s.y)
        rec = tracking.log_image_augmenter(aug, dataset_name=Path(data).stem,
                                           source=str(Path(data).resolve()),
                                           X=s.X, y=s.y, register_as=model_name)
        info = {"name": rec.registered_name, "version": rec.version, "gate": rec.gate,
                "promoted": rec.promoted, "run_id": rec.run_id, "url": rec.url}
    else:
        aug, desc = tracking.load_image_augmenter(model)
        if "sampling_strategy" in params:
            aug.set_params(sampling_strategy=params["sampling_strategy"])
        if "random_state" in params:
            aug.reseed(params["random_state"])
        X_res, y_res = aug.resample(s.X, s.y)
        info = {"name": desc, "version": None, "gate": "loaded", "promoted": False,
                "run_id": None, "url": None}
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, X=X_res, y=y_res, is_synthetic=np.arange(len(X_res)) >= len(s.X))
    return {"out": out, "n_real": len(s.X), "n_generated": len(X_res) - len(s.X),
            "selected": aug.selected_, "model": info, "url": info["url"]}


@flow(name="augment-images", log_prints=True)
def augment_images(
    data: str = "data/sample/digits_8x8.npz",
    out: str = "data/augmented/digits_8x8.augmented.npz",
    labels: str | None = None,
    size: list[int] | None = None,
    model: str | None = None,
    model_name: str | None = IMAGE_AUGMENTER,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Grow every class to the largest one's count with generated images: ``out`` holds
    ``X``, ``y`` and ``is_synthetic``. ``model=None`` fits a new image GAN (``params`` go to
    :class:`ImageAugmenter`), logs its sample grids and registers it as ``model_name``;
    otherwise ``model`` is ``models:/name@alias`` or a saved folder."""
    rec = fit_augment(data, labels, size, {"random_state": random_state, **(params or {})},
                      out, model, model_name)
    m = rec["model"]
    create_markdown_artifact(
        key="image-augmentation",
        markdown=(f"### Augmented `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| real images | {rec['n_real']} |\n| generated | {rec['n_generated']} |\n"
                  f"| held-out class share | {rec['selected']['class_share']:.3f} |\n"
                  f"| model | {m['name']} v{m['version']} ({m['gate']}) |\n"
                  f"| output | `{out}` |\n| MLflow run | {rec['url']} |\n"))
    return rec


def rare_subset(y: np.ndarray, positive: Any, share: float, random_state: int) -> np.ndarray:
    """Indices keeping every image but a seeded sample of class ``positive``, cut to ``share``
    of the result (the rare-class setup of the evaluation)."""
    y = np.asarray(y).astype(str)
    pos = np.flatnonzero(y == str(positive))
    if not len(pos):
        raise ValueError(f"class {positive!r} not among the labels {sorted(set(y))}")
    rest = np.flatnonzero(y != str(positive))
    k = max(6, round(share * len(rest) / (1 - share)))
    keep = np.random.default_rng(random_state).choice(pos, min(k, len(pos)), replace=False)
    return np.sort(np.r_[rest, keep])


@task(retries=1, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input,
      cache_policy=NO_CACHE)
def run_image_evaluation(data: str, labels: str | None, size: Any, arms: list[str],
                         classifiers: list[str], n_splits: int, positive: Any,
                         rare_share: float | None, random_state: int,
                         gan_params: dict[str, Any]) -> Any:
    """Read the labelled images, cut ``positive`` to ``rare_share``, evaluate on pixels."""
    from genaug import tracking
    from genaug.image_evaluation import evaluate_image_augmentation

    tracking.check_store()
    s = read_images(data, labels=labels, size=_size(size))
    if s.y is None:
        raise ValueError(f"{data}: the evaluation needs class labels (subfolders or a CSV)")
    X, y = s.X, np.asarray(s.y)
    if positive is None:  # the rarest class
        values, counts = np.unique(y, return_counts=True)
        positive = values[np.argmin(counts)]
    hit = y[y.astype(str) == str(positive)]  # "8" on the command line matches the label 8
    if not len(hit):
        raise ValueError(f"class {positive!r} not among the labels {sorted(set(y.tolist()))}")
    positive = hit[0].item() if isinstance(hit[0], np.generic) else hit[0]
    if rare_share:
        idx = rare_subset(y, positive, rare_share, random_state)
        X, y = X[idx], y[idx]
    return evaluate_image_augmentation(X, y, arms, classifiers=classifiers, n_splits=n_splits,
                                       positive=positive, random_state=random_state,
                                       gan_params=gan_params, progress=True)


@flow(name="evaluate-image-augmentation", log_prints=True)
def evaluate_image_augmentation_flow(
    data: str,
    labels: str | None = None,
    size: list[int] | None = None,
    positive: Any = None,
    rare_share: float | None = 0.05,
    arms: list[str] | None = None,
    classifiers: list[str] | None = None,
    n_splits: int = 5,
    random_state: int = 0,
    gan_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The augmentation evaluation of tables, on pixels: ``positive`` (default: the rarest
    class) cut to ``rare_share`` of the images, arms none / random / gan (default), classifiers
    logreg / hgb / rf (default), logged like ``evaluate-augmentation`` (MLflow parent and child
    runs, the ``augmentation-evaluation`` table artifact)."""
    from genaug import tracking
    from pipelines.evaluate_augmentation import summary_rows

    arms = list(arms or ("none", "random", "gan"))
    classifiers = list(classifiers or ("logreg", "hgb", "rf"))
    result = run_image_evaluation(data, labels, size, arms, classifiers, n_splits, positive,
                                  rare_share, random_state, dict(gan_params or {}))
    rows = summary_rows(result)
    pid, url = tracking.log_evaluation(
        result, dataset_name=Path(data).stem, source=str(Path(data).resolve()),
        params={"data": data, "kind": "images", "rare_share": rare_share,
                "gan_params": gan_params or {}})
    create_table_artifact(key="augmentation-evaluation", table=rows,
                          description=f"Image augmentation evaluation on `{data}` (positive "
                                      f"class `{result.positive}`, {n_splits} splits)")
    print(result.to_markdown())
    return {"positive": result.positive, "baseline": result.baseline, "table": rows,
            "markdown": result.to_markdown(), "run_id": pid, "url": url}
