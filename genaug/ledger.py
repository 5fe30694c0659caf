"""A SQLite ledger of incoming files, keyed by content hash, so batch jobs process each once.

A run *claims* a file before touching it (an ``INSERT`` that only one process can win), and
marks it ``done`` or ``quarantined`` afterwards. A claim older than ``stale_after`` seconds is
taken to belong to a crashed run and may be claimed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sqlite3
import time
from pathlib import Path

DONE = "done"
QUARANTINED = "quarantined"
CLAIMED = "claimed"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Ledger:
    """Which file contents were processed, by whom, with what outcome."""

    def __init__(self, path: str | os.PathLike, stale_after: float = 3600.0) -> None:
        self.path = Path(path)
        self.stale_after = stale_after
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS files (digest TEXT PRIMARY KEY, name TEXT, "
                "status TEXT, claimed_at REAL, finished_at REAL, detail TEXT)"
            )

    def _raw(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        # WAL is stored in the file: set it once. Switching modes needs an exclusive lock and
        # SQLite answers "database is locked" at once (no busy wait) when runs start together.
        for attempt in range(50):
            if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                break
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.05 + 0.05 * random.random())
        return db

    def _connect(self) -> contextlib.closing[sqlite3.Connection]:
        return contextlib.closing(self._raw())

    def status(self, digest: str) -> str | None:
        """The recorded status of ``digest``, or None."""
        with self._connect() as db:
            row = db.execute("SELECT status FROM files WHERE digest=?", (digest,)).fetchone()
        return None if row is None else row[0]

    def claim(self, digest: str, name: str) -> bool:
        """Claim ``digest`` for this run; False if it is done, quarantined or claimed live."""
        now = time.time()
        db = self._raw()
        try:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: the check and insert are atomic
            row = db.execute("SELECT status, claimed_at FROM files WHERE digest=?",
                             (digest,)).fetchone()
            if row is not None and (row[0] != CLAIMED or now - row[1] < self.stale_after):
                db.execute("ROLLBACK")
                return False
            db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, NULL, NULL)",
                (digest, name, CLAIMED, now),
            )
            db.execute("COMMIT")
            return True
        finally:
            db.close()

    def finish(self, digest: str, status: str, detail: str = "") -> None:
        """Record the outcome of a claimed file."""
        with self._connect() as db:
            db.execute("UPDATE files SET status=?, finished_at=?, detail=? WHERE digest=?",
                       (status, time.time(), detail, digest))

    def finish_many(self, digests: list[str], status: str, detail: str = "") -> None:
        """Record one outcome for several claimed files in a single transaction."""
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("UPDATE files SET status=?, finished_at=?, detail=? WHERE digest=?",
                           [(status, now, detail, d) for d in digests])
            db.execute("COMMIT")

    def record(self, digest: str) -> tuple[str, float | None, str | None] | None:
        """``(status, finished_at, detail)`` of ``digest``, or None."""
        with self._connect() as db:
            row = db.execute("SELECT status, finished_at, detail FROM files WHERE digest=?",
                             (digest,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def reclaim(self, digest: str, name: str, finished_at: float) -> bool:
        """Claim a finished ``digest`` again, only if its record is still the one finished at
        ``finished_at`` (compare-and-set: one of several runs wins)."""
        db = self._raw()
        try:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute("UPDATE files SET name=?, status=?, claimed_at=?, finished_at=NULL, "
                             "detail=NULL WHERE digest=? AND finished_at=?",
                             (name, CLAIMED, time.time(), digest, finished_at))
            db.execute("COMMIT")
            return cur.rowcount == 1
        finally:
            db.close()

    def release(self, digest: str) -> None:
        """Drop a claim (the file failed for a reason that may pass: it will be retried)."""
        with self._connect() as db:
            db.execute("DELETE FROM files WHERE digest=? AND status=?", (digest, CLAIMED))
