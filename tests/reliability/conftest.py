"""Fixtures shared by the fault-tolerance tests: a strict fitted detector and batch folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from genaug import AnomalyDetector

from ..conftest import mixed_frame

MAX_COUNT = 6  # `count` is categorical (few levels): clip it so every level was seen in training


def clean_frame(n: int, seed: int) -> pd.DataFrame:
    """Rows from the training distribution whose categorical levels were all seen in training."""
    df = mixed_frame(n=n, seed=seed).drop(columns="is_anomaly")
    df["count"] = df["count"].clip(upper=MAX_COUNT)
    return df


@pytest.fixture(scope="session")
def strict_detector() -> AnomalyDetector:
    """A tiny detector (about 1 s to fit) that rejects unseen categories."""
    return AnomalyDetector(random_state=0, max_steps=40, n_members=1,
                           handle_unknown="error").fit(clean_frame(300, seed=11))


@pytest.fixture(scope="session")
def strict_model(strict_detector, tmp_path_factory) -> Path:
    """``strict_detector`` saved as a model folder (config.json + weights.pt)."""
    return strict_detector.save(tmp_path_factory.mktemp("strict") / "model")


def age(path: str | os.PathLike, seconds: float = 60) -> None:
    """Set a file's mtime ``seconds`` into the past (older than the batch's ``min_age``)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def batch_folders(root: Path) -> dict[str, Path]:
    """``incoming``, ``out``, ``processed`` and ``quarantine`` folders under ``root``."""
    d = {k: root / k for k in ("incoming", "out", "processed", "quarantine")}
    for p in d.values():
        p.mkdir(parents=True, exist_ok=True)
    return d


def listing(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden ones included, sorted."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
