"""Incoming-folder scoring: every new file is validated, scored and moved; bad files quarantined.

For each Parquet/CSV file in ``incoming`` (oldest first):

1. skip it if it changed in the last ``min_age`` seconds (it may still be being written);
2. claim its content hash in the :class:`~genaug.ledger.Ledger`; a content already processed is
   not scored again (the file is moved to ``processed`` as a duplicate);
3. read and validate it against the model's schema and score it, Parquet in batches
   (:func:`~genaug.scoring.score_file`: memory stays bounded); write
   ``out/<stem>.scores.parquet`` (a row key, ``score``, ``is_anomaly``, ``contrib_<column>``;
   the input's hash in the Parquet metadata) atomically, mark it done, then move the input to
   ``processed``;
4. on bad input (:class:`~genaug.errors.GenaugInputError`) move it to ``quarantine`` with
   ``<name>.reason.json`` beside it (``file``, ``column``, ``expected``, ``found``, ``error``), and
   go on with the rest of the batch. Any other error leaves the file in ``incoming`` and releases
   its claim, so the next run retries it.

A run killed at any point (SIGKILL, power loss) is recovered by the next run once the claim is
older than the ledger's ``stale_after``: temp files it left are removed, a scores file it
finished for the same content is overwritten rather than duplicated, and a file already marked
done or quarantined is only moved.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .detector import AnomalyDetector
from .drift import DriftReport
from .errors import GenaugInputError
from .io import CSV_SUFFIXES, PARQUET_SUFFIXES, remove_stale_temps, write_json_atomic
from .ledger import DONE, QUARANTINED, Ledger, file_digest
from .scoring import ScoredFile, score_file

log = logging.getLogger(__name__)
INPUT_SHA256 = "genaug.input_sha256"  # Parquet metadata key of a scores file: its input's hash


@dataclass
class FileSummary:
    """A scored file: where its scores went, its counts and its drift report."""

    name: str
    output: str
    n_rows: int
    n_flagged: int
    drift: DriftReport | None = None

    def row(self) -> dict[str, Any]:
        """One line of the batch's table artifact."""
        d = self.drift
        rate = self.n_flagged / max(self.n_rows, 1)
        return {"file": self.name, "outcome": "scored", "rows": self.n_rows,
                "flagged": self.n_flagged, "flag_rate": round(rate, 4),
                "max_psi": None if d is None or not d.available else round(d.max_psi, 4),
                "score_psi": None if d is None else round(d.score_psi, 4),
                "drifted_columns": "" if d is None else ", ".join(d.drifted_columns)}


@dataclass
class BatchResult:
    """What one batch run did, file by file."""

    scored: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rows_scored: int = 0
    rows_flagged: int = 0
    files: list[FileSummary] = field(default_factory=list)

    @property
    def drifted_columns(self) -> list[str]:
        """Columns drifted (PSI > 0.25) in at least one scored file."""
        return sorted({c for f in self.files if f.drift for c in f.drift.drifted_columns})

    def counts(self) -> dict[str, int]:
        """The run's totals (for the Prefect artifact and the MLflow batch run)."""
        return {"files_scored": len(self.scored), "rows_scored": self.rows_scored,
                "rows_flagged": self.rows_flagged, "files_quarantined": len(self.quarantined),
                "duplicates": len(self.duplicates), "skipped": len(self.skipped),
                "failed": len(self.failed), "drifted_columns": len(self.drifted_columns)}

    def add(self, outcome: FileOutcome) -> None:
        """Record one file's outcome (``gone`` files are not recorded)."""
        lists = {SCORED: self.scored, QUARANTINE: self.quarantined,
                 DUPLICATE: self.duplicates, SKIPPED: self.skipped, FAILED: self.failed}
        if outcome.status in lists:
            lists[outcome.status].append(outcome.name)
        sc = outcome.scored
        if sc is not None:
            self.rows_scored += sc.n_rows
            self.rows_flagged += sc.n_flagged
            self.files.append(FileSummary(outcome.name, str(sc.output), sc.n_rows,
                                          sc.n_flagged, sc.drift))

    def summary(self) -> str:
        """One line for logs and the CLI."""
        drift = self.drifted_columns
        return (f"scored {len(self.scored)} file(s) ({self.rows_scored} rows, "
                f"{self.rows_flagged} flagged), quarantined {len(self.quarantined)}, "
                f"duplicates {len(self.duplicates)}, skipped {len(self.skipped)} "
                f"(still changing), failed {len(self.failed)} (left for retry)"
                + (f"; drift (PSI > 0.25) in {', '.join(drift)}" if drift else ""))


def list_incoming(incoming: str | os.PathLike) -> list[Path]:
    """Data files in ``incoming`` by modification time; hidden and temp files are ignored."""
    suffixes = PARQUET_SUFFIXES | CSV_SUFFIXES
    files = [p for p in Path(incoming).iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def _destination(src: Path, folder: Path, digest: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    if dst.exists():  # another file of that name was handled before: keep both
        dst = folder / f"{src.stem}.{digest[:12]}{src.suffix}"
    return dst


def _move(src: Path, folder: Path, digest: str) -> Path:
    dst = _destination(src, folder, digest)
    os.replace(src, dst)
    return dst


def input_digest(scores: str | os.PathLike) -> str | None:
    """The input hash recorded in a scores file written by :func:`score_incoming`, or None."""
    try:
        meta = pq.read_schema(scores).metadata or {}
    except (pa.ArrowException, OSError):
        return None
    return meta.get(INPUT_SHA256.encode(), b"").decode() or None


def _output_for(out: Path, src: Path, digest: str) -> Path:
    """``out/<stem>.scores.parquet``; with the hash added if that holds another input's scores.

    Scores of this same content (a run killed before it could record them) are overwritten.
    """
    target = out / f"{src.stem}.scores.parquet"
    if target.exists() and input_digest(target) != digest:
        target = out / f"{src.stem}.{digest[:12]}.scores.parquet"
    return target


SCORED, QUARANTINE, DUPLICATE, SKIPPED, FAILED, GONE = (
    "scored", "quarantined", "duplicate", "skipped", "failed", "gone")


@dataclass
class FileOutcome:
    """What :func:`process_file` did with one file; ``scored`` is set when it was scored.

    ``gone``: the file was moved away, or claimed, by a concurrent run meanwhile.
    """

    name: str
    status: str
    scored: ScoredFile | None = None


def process_file(
    path: str | os.PathLike,
    detector: AnomalyDetector,
    *,
    out: str | os.PathLike,
    processed: str | os.PathLike,
    quarantine: str | os.PathLike,
    ledger: Ledger,
    min_age: float = 2.0,
    batch_rows: int = 65536,
) -> FileOutcome:
    """Steps 1 to 4 of the module docstring for one file; safe to run in parallel (the ledger
    claim lets one run score a given content)."""
    path = Path(path)
    out, processed, quarantine = Path(out), Path(processed), Path(quarantine)
    try:
        if time.time() - path.stat().st_mtime < min_age:
            return FileOutcome(path.name, SKIPPED)
        digest = file_digest(path)
        status = ledger.status(digest)
        if status in (DONE, QUARANTINED):
            _move(path, processed if status == DONE else quarantine, digest)
            return FileOutcome(path.name, DUPLICATE)
    except FileNotFoundError:  # moved away by a concurrent run meanwhile
        return FileOutcome(path.name, GONE)
    if not ledger.claim(digest, path.name):
        return FileOutcome(path.name, GONE)  # another run is on it
    try:
        target = _output_for(out, path, digest)
        scored = score_file(path, detector, target, batch_rows=batch_rows,
                            metadata={INPUT_SHA256: digest})
        # record before moving: a crash in between leaves a done file in incoming, which
        # the next run moves as a duplicate, not a claim that is never finished
        ledger.finish(digest, DONE, str(target))
        # a concurrent run that lists the file now sees it recorded and moves it itself
        with contextlib.suppress(FileNotFoundError):
            _move(path, processed, digest)
        return FileOutcome(path.name, SCORED, scored)
    except GenaugInputError as e:
        err = e.with_file(str(path))
        dst = _destination(path, quarantine, digest)  # reason, record, move: crash-safe order
        write_json_atomic(err.to_dict(), dst.with_name(dst.name + ".reason.json"))
        ledger.finish(digest, QUARANTINED, str(err))
        with contextlib.suppress(FileNotFoundError):  # moved meanwhile by a concurrent run
            os.replace(path, dst)
        log.warning("quarantined %s: %s", path.name, err)
        return FileOutcome(path.name, QUARANTINE)
    except Exception:
        ledger.release(digest)
        log.exception("could not process %s; left in place for the next run", path.name)
        return FileOutcome(path.name, FAILED)


def sweep_temps(*folders: str | os.PathLike, ledger: Ledger) -> None:
    """Remove temp files a killed run left in ``folders`` (as old as a stale ledger claim)."""
    for folder in folders:
        for tmp in remove_stale_temps(Path(folder), ledger.stale_after):
            log.warning("removed %s, left behind by a run that was killed", tmp)


def score_incoming(
    incoming: str | os.PathLike,
    detector: AnomalyDetector,
    *,
    out: str | os.PathLike,
    processed: str | os.PathLike,
    quarantine: str | os.PathLike,
    ledger: Ledger,
    min_age: float = 2.0,
    batch_rows: int = 65536,
    on_scored: Callable[[Path, ScoredFile], None] | None = None,
) -> BatchResult:
    """Process every file now in ``incoming``, one after the other (see the module docstring).

    Each scored file's drift against the training data is in ``BatchResult.files``
    (:mod:`genaug.drift`); ``on_scored(output, scored)`` is called after each scored file.
    """
    res = BatchResult()
    sweep_temps(out, quarantine, ledger=ledger)
    for path in list_incoming(incoming):
        outcome = process_file(path, detector, out=out, processed=processed,
                               quarantine=quarantine, ledger=ledger, min_age=min_age,
                               batch_rows=batch_rows)
        res.add(outcome)
        if on_scored is not None and outcome.scored is not None:
            try:
                on_scored(outcome.scored.output, outcome.scored)
            except Exception:  # the file is scored and recorded; only the report failed
                log.exception("reporting the scores of %s failed", path.name)
    return res
