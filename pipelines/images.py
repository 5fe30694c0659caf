"""Image flows: ``train-image-detector``, ``score-images`` (incoming folder with quarantine),
``augment-images`` and ``evaluate-image-augmentation``. Thin tasks over :mod:`genaug.images`,
:mod:`genaug.image_detector`, :mod:`genaug.image_batch`, :mod:`genaug.image_augmenter` and
:mod:`genaug.image_evaluation`; MLflow through
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


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def fit_image_detector(data: str, labels: str | None, size: Any, params: dict[str, Any],
                       model_dir: str, normal_class: Any = None) -> dict[str, Any]:
    """Read the images (only ``normal_class`` if given), fit the detector, save it."""
    from genaug import tracking

    logger = get_run_logger()
    tracking.check_store()
    s = read_images(data, labels=labels, size=_size(size))
    X = s.X if normal_class is None else s.X[np.asarray(s.y).astype(str) == str(normal_class)]
    t0 = time.perf_counter()
    det = ImageAnomalyDetector(**params).fit(X, file=data)
    secs = time.perf_counter() - t0
    det.save(model_dir)
    run_id, url = tracking.log_image_detector(det, X, dataset_name=Path(data).stem,
                                              fit_seconds=secs)
    logger.info("image detector fitted on %d images %s in %.1f s; threshold %.4g; %s",
                len(X), det.image_shape_, secs, det.threshold_, url)
    return {"model_dir": model_dir, "n_images": len(X), "fit_seconds": secs,
            "threshold": det.threshold_, "run_id": run_id, "url": url}


@flow(name="train-image-detector", log_prints=True)
def train_image_detector(
    data: str,
    model_dir: str = "models/image-detector",
    labels: str | None = None,
    size: list[int] | None = None,
    normal_class: str | None = None,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit an :class:`ImageAnomalyDetector` on the images in ``data``; save and log it."""
    p = {"random_state": random_state, **(params or {})}
    rec = fit_image_detector(data, labels, size, p, model_dir, normal_class)
    create_markdown_artifact(
        key="image-detector-training",
        markdown=(f"### Image detector trained on `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| images | {rec['n_images']} |\n| fit seconds | {rec['fit_seconds']:.1f} |\n"
                  f"| threshold | {rec['threshold']:.4g} |\n| model folder | `{model_dir}` |\n"
                  f"| MLflow run | {rec['url']} |\n"))
    return rec


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def score_folder(incoming: str, model_dir: str, out: str, processed: str, quarantine: str,
                 resize: bool, min_age: float) -> dict[str, Any]:
    """Score every image in ``incoming``; bad files go to ``quarantine`` with a reason."""
    logger = get_run_logger()
    det = ImageAnomalyDetector.load(model_dir)
    res = score_image_folder(incoming, det, out=out, processed=processed, quarantine=quarantine,
                             resize=resize, min_age=min_age)
    logger.info(res.summary())
    return {"scored": res.scored, "quarantined": res.quarantined, "skipped": res.skipped,
            "output": res.output, "n_flagged": res.n_flagged}


@flow(name="score-images", log_prints=True)
def score_images(
    incoming: str = "data/images/incoming",
    model_dir: str = "models/image-detector",
    out: str = "data/images/scores",
    processed: str = "data/images/processed",
    quarantine: str = "data/images/quarantine",
    resize: bool = False,
    min_age: float = 2.0,
) -> dict[str, Any]:
    """Score the images now in ``incoming`` with a saved image detector."""
    res = score_folder(incoming, model_dir, out, processed, quarantine, resize, min_age)
    create_markdown_artifact(
        key="image-scoring",
        markdown=(f"### Scored images in `{incoming}`\n\n| item | value |\n|---|---|\n"
                  f"| scored | {len(res['scored'])} |\n| flagged | {res['n_flagged']} |\n"
                  f"| quarantined | {', '.join(res['quarantined']) or 'none'} |\n"
                  f"| scores file | `{res['output']}` |\n"))
    return res


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input)
def fit_augment(data: str, labels: str | None, size: Any, params: dict[str, Any],
                out: str) -> dict[str, Any]:
    """Fit the image GAN on labelled images, write real + generated images to ``out`` (.npz)."""
    from genaug import tracking

    tracking.check_store()
    s = read_images(data, labels=labels, size=_size(size))
    if s.y is None:
        raise ValueError(f"{data}: augmentation needs class labels (subfolders or a CSV)")
    aug = ImageAugmenter(**params)
    X_res, y_res = aug.fit_resample(s.X, s.y)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, X=X_res, y=y_res)
    run_id, url = tracking.log_image_augmenter(aug, dataset_name=Path(data).stem)
    return {"out": out, "n_real": len(s.X), "n_generated": len(X_res) - len(s.X),
            "selected": aug.selected_, "run_id": run_id, "url": url}


@flow(name="augment-images", log_prints=True)
def augment_images(
    data: str,
    out: str = "data/images/augmented.npz",
    labels: str | None = None,
    size: list[int] | None = None,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Grow every class to the largest one's count with generated images; log grids."""
    rec = fit_augment(data, labels, size, {"random_state": random_state, **(params or {})}, out)
    create_markdown_artifact(
        key="image-augmentation",
        markdown=(f"### Augmented `{data}`\n\n| item | value |\n|---|---|\n"
                  f"| real images | {rec['n_real']} |\n| generated | {rec['n_generated']} |\n"
                  f"| held-out class share | {rec['selected']['class_share']:.3f} |\n"
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
