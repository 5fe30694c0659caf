"""Incoming-folder scoring for images: score every image file once, quarantine the bad ones.

For each non-hidden file in ``incoming`` (oldest first, skipping files changed in the last
``min_age`` seconds):

1. hash it and look it up in the :class:`~genaug.ledger.Ledger` (key: the SHA-256 of the
   bytes, plus ``+resize`` under that policy): content already scored (its
   scores file exists) goes straight to ``processed``, content already quarantined to
   ``quarantine`` (both counted as ``duplicates``); content a live run has claimed is left alone;
2. claim it, decode it with :func:`genaug.images.read_image` in the model's colour mode (and,
   with ``resize=True``, at the model's size) and score it with the image detector;
3. on bad input (:class:`~genaug.errors.GenaugInputError`: not an image type, empty, corrupt or
   truncated, wrong size) write ``<name>.reason.json`` (``file``, ``column``, ``expected``,
   ``found``, ``error``) into ``quarantine``, record it, move the file there, and go on;
4. once every file is handled, write one scores file ``out/images-<UTC time>.scores.parquet``
   (``file``, ``sha256``, ``score``, ``is_anomaly``, and the row/column of each image's map
   peak) to a temp file, record every image as done with that file in one ledger transaction,
   rename the temp file into place, then move the scored images to ``processed``.

Crash safety (SIGKILL anywhere): before the ledger records, nothing is visible and the claims
go stale after ``stale_after`` seconds, then the images are scored again; after it records but
before the rename, the recorded scores file is missing, so the images are likewise scored again
once the record is ``stale_after`` old; after the rename, the next run only moves the images.
Either way each image ends in exactly one scores file, and the leftover temp file is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .batch import _destination
from .errors import GenaugInputError
from .image_detector import ImageAnomalyDetector
from .images import read_image
from .io import default_mode, remove_stale_temps, write_json_atomic
from .ledger import DONE, QUARANTINED, Ledger, file_digest

log = logging.getLogger(__name__)


@dataclass
class ImageBatchResult:
    """What one image batch did: file names per outcome, and the scores file."""

    scored: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    output: str | None = None
    n_flagged: int = 0

    def summary(self) -> str:
        """One line for logs."""
        return (f"scored {len(self.scored)} image(s) ({self.n_flagged} flagged), quarantined "
                f"{len(self.quarantined)}, already handled {len(self.duplicates)}, skipped "
                f"{len(self.skipped)} (still changing), failed {len(self.failed)}")


def _move(src: Path, folder: Path, digest: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # a concurrent run moved it meanwhile
        os.replace(src, _destination(src, folder, digest))


def _scores_target(out: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target, n = out / f"images-{stamp}.scores.parquet", 1
    while target.exists():  # another run in the same second: keep both
        n += 1
        target = out / f"images-{stamp}-{n}.scores.parquet"
    return target


def score_image_folder(
    incoming: str | os.PathLike,
    detector: ImageAnomalyDetector,
    *,
    out: str | os.PathLike,
    processed: str | os.PathLike,
    quarantine: str | os.PathLike,
    ledger: Ledger | None = None,
    resize: bool = False,
    min_age: float = 0.0,
) -> ImageBatchResult:
    """Score and move every image now in ``incoming`` (see the module docstring).

    ``ledger`` defaults to ``out/ledger.sqlite``.
    """
    incoming, out = Path(incoming), Path(out)
    processed, quarantine = Path(processed), Path(quarantine)
    out.mkdir(parents=True, exist_ok=True)
    ledger = ledger if ledger is not None else Ledger(out / "ledger.sqlite")
    for folder in (out, quarantine):
        for tmp in remove_stale_temps(folder, ledger.stale_after):
            log.warning("removed %s, left behind by a run that was killed", tmp)
    c, h, w = detector.image_shape_
    mode = "L" if c == 1 else "RGB"
    res = ImageBatchResult()
    files = sorted((p for p in incoming.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: (p.stat().st_mtime, p.name))
    rows, claimed = [], []
    for path in files:
        try:
            if time.time() - path.stat().st_mtime < min_age:
                res.skipped.append(path.name)
                continue
            sha = file_digest(path)
        except FileNotFoundError:  # moved away by a concurrent run
            continue
        # the outcome depends on the content and on the size policy (a refused size may be
        # accepted with resize=True): both make the ledger key
        digest = f"{sha}+resize" if resize else sha
        if not _claim(ledger, path, digest, processed, quarantine, res):
            continue
        try:
            img = read_image(path, mode=mode, size=(h, w) if resize else None)
            x = img[None]
            score = float(detector.decision_function(x, file=str(path))[0])
            peak = np.unravel_index(int(np.argmax(detector.explain(x)[0])), (h, w))
        except GenaugInputError as e:
            err = e.with_file(str(path))
            dst = _destination(path, quarantine, digest)  # reason, record, move: crash-safe
            write_json_atomic(err.to_dict(), dst.with_name(dst.name + ".reason.json"))
            ledger.finish(digest, QUARANTINED, str(err))
            with contextlib.suppress(FileNotFoundError):  # moved meanwhile by a concurrent run
                os.replace(path, dst)
            res.quarantined.append(path.name)
            log.warning("quarantined %s: %s", path.name, err)
            continue
        except Exception:
            ledger.release(digest)
            res.failed.append(path.name)
            log.exception("could not score %s; left in place for the next run", path.name)
            continue
        rows.append({"file": path.name, "sha256": sha, "score": score,
                     "is_anomaly": int(score > detector.threshold_),
                     "peak_row": int(peak[0]), "peak_col": int(peak[1])})
        claimed.append((path, digest))
    if rows:
        res.output = str(_commit(out, rows, [d for _, d in claimed], ledger))
        for path, digest in claimed:  # after the scores are recorded and in place
            _move(path, processed, digest)
            res.scored.append(path.name)
        res.n_flagged = sum(r["is_anomaly"] for r in rows)
    return res


def _claim(ledger: Ledger, path: Path, digest: str, processed: Path, quarantine: Path,
           res: ImageBatchResult) -> bool:
    """Claim ``digest`` for this run, or finish what an earlier run recorded; True to score."""
    rec = ledger.record(digest)
    if rec is not None and rec[0] == QUARANTINED:
        _move(path, quarantine, digest)
        res.duplicates.append(path.name)
        return False
    if rec is not None and rec[0] == DONE:
        status, finished_at, detail = rec
        if detail and Path(detail).exists():
            _move(path, processed, digest)
            res.duplicates.append(path.name)
            return False
        # recorded, but its scores file never got renamed into place: a killed run's
        if finished_at is None or time.time() - finished_at < ledger.stale_after:
            return False  # maybe a live run between its record and its rename
        return ledger.reclaim(digest, path.name, finished_at)
    return ledger.claim(digest, path.name)


def _commit(out: Path, rows: list[dict], digests: list[str], ledger: Ledger) -> Path:
    """Temp file -> ledger record (one transaction) -> rename; claims released on failure."""
    target = _scores_target(out)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=out)
    os.close(fd)
    tmp = Path(name)
    try:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode(0o666))  # mkstemp makes 0600
        ledger.finish_many(digests, DONE, str(target.resolve()))
    except BaseException:
        tmp.unlink(missing_ok=True)
        for d in digests:
            ledger.release(d)
        raise
    os.replace(tmp, target)
    return target


def score_image_source(
    source: str | os.PathLike,
    detector: ImageAnomalyDetector,
    out: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    resize: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Score every image of ``source`` (a folder, an ``.npz`` or one image file) in place and
    write ``out`` (Parquet, atomically): ``file`` (path, or ``<npz>[i]``), ``label`` when the
    source has labels, ``score``, ``is_anomaly``, ``peak_row``, ``peak_col``. Unlike
    :func:`score_image_folder` nothing is moved; a bad image fails the whole call with a
    :class:`~genaug.errors.GenaugInputError` naming its file. Returns the scores and the
    images as read (``uint8``)."""
    from .images import IMAGE_SUFFIXES, read_images
    from .io import atomic_path

    c, h, w = detector.image_shape_
    mode = "L" if c == 1 else "RGB"
    size = (h, w) if resize else None
    src = Path(source)
    if src.is_file() and src.suffix.lower() in IMAGE_SUFFIXES:
        X, files, y = read_image(src, mode=mode, size=size)[None], [str(src)], None
    else:
        s = read_images(src, labels=labels, size=size, mode=mode)
        X, files, y = s.X, s.files, s.y
        if src.suffix.lower() == ".npz":
            files = [f"{src}[{i}]" for i in range(len(X))]
    scores = detector.decision_function(X, file=str(src))
    maps = detector.explain(X, file=str(src))
    peaks = np.array([np.unravel_index(int(np.argmax(m)), m.shape) for m in maps]).reshape(-1, 2)
    frame = pd.DataFrame({"file": files, "score": scores,
                          "is_anomaly": (scores > detector.threshold_).astype(int),
                          "peak_row": peaks[:, 0], "peak_col": peaks[:, 1]})
    if y is not None:
        frame.insert(1, "label", np.asarray(y).astype(str))
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)
    return frame, X
