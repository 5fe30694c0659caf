"""Image flows: ``train-image-detector``, ``score-images`` (incoming folder with quarantine) and
``augment-images``. Thin tasks over :mod:`genaug.images`, :mod:`genaug.image_detector`,
:mod:`genaug.image_batch` and :mod:`genaug.image_augmenter`; MLflow through
:mod:`genaug.tracking`. Image sources: a class-folder tree, a folder plus labels CSV, or an
``.npz`` (see :func:`genaug.images.read_images`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

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
