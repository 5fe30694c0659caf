"""Incoming-folder scoring for images: score every image file, quarantine the bad ones.

For each non-hidden file in ``incoming`` (oldest first, skipping files changed in the last
``min_age`` seconds):

1. decode it with :func:`genaug.images.read_image` in the model's colour mode (and, with
   ``resize=True``, at the model's size) and score it with the image detector;
2. on bad input (:class:`~genaug.errors.GenaugInputError`: not an image type, empty, corrupt or
   truncated, wrong size) move it to ``quarantine`` with ``<name>.reason.json`` beside it
   (``file``, ``column``, ``expected``, ``found``, ``error``), and go on;
3. once every file is handled, write one scores file ``out/images-<UTC time>.scores.parquet``
   (``file``, ``score``, ``is_anomaly``, and the row/column of each image's map peak)
   atomically, then move the scored images to ``processed``.

Unlike the tabular batch (:mod:`genaug.batch`) there is no ledger: a run killed between writing
the scores and moving the images scores those images again on the next run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import GenaugInputError
from .image_detector import ImageAnomalyDetector
from .images import read_image
from .io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class ImageBatchResult:
    """What one image batch did: scored and quarantined file names, and the scores file."""

    scored: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output: str | None = None
    n_flagged: int = 0

    def summary(self) -> str:
        """One line for logs."""
        return (f"scored {len(self.scored)} image(s) ({self.n_flagged} flagged), quarantined "
                f"{len(self.quarantined)}, skipped {len(self.skipped)} (still changing)")


def _move(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    if dst.exists():
        dst = folder / f"{src.stem}.{time.time_ns()}{src.suffix}"
    os.replace(src, dst)
    return dst


def score_image_folder(
    incoming: str | os.PathLike,
    detector: ImageAnomalyDetector,
    *,
    out: str | os.PathLike,
    processed: str | os.PathLike,
    quarantine: str | os.PathLike,
    resize: bool = False,
    min_age: float = 0.0,
) -> ImageBatchResult:
    """Score and move every image now in ``incoming`` (see the module docstring)."""
    incoming, out = Path(incoming), Path(out)
    processed, quarantine = Path(processed), Path(quarantine)
    c, h, w = detector.image_shape_
    mode = "L" if c == 1 else "RGB"
    res = ImageBatchResult()
    files = sorted((p for p in incoming.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: (p.stat().st_mtime, p.name))
    rows, done = [], []
    for path in files:
        if time.time() - path.stat().st_mtime < min_age:
            res.skipped.append(path.name)
            continue
        try:
            img = read_image(path, mode=mode, size=(h, w) if resize else None)
            x = img[None]
            score = float(detector.decision_function(x, file=str(path))[0])
            peak = np.unravel_index(int(np.argmax(detector.explain(x)[0])), (h, w))
        except GenaugInputError as e:
            err = e.with_file(str(path))
            quarantine.mkdir(parents=True, exist_ok=True)
            write_json_atomic(err.to_dict(), quarantine / f"{path.name}.reason.json")
            _move(path, quarantine)
            res.quarantined.append(path.name)
            log.warning("quarantined %s: %s", path.name, err)
            continue
        rows.append({"file": path.name, "score": score,
                     "is_anomaly": int(score > detector.threshold_),
                     "peak_row": int(peak[0]), "peak_col": int(peak[1])})
        done.append(path)
    if rows:
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = out / f"images-{stamp}.scores.parquet"
        n = 1
        while target.exists():  # another run in the same second: keep both
            n += 1
            target = out / f"images-{stamp}-{n}.scores.parquet"
        with atomic_path(target) as tmp:
            pd.DataFrame(rows).to_parquet(tmp, index=False)
        res.output = str(target)
        for path in done:  # after the scores are safely written
            _move(path, processed)
            res.scored.append(path.name)
        res.n_flagged = sum(r["is_anomaly"] for r in rows)
    return res
