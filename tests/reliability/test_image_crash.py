"""The image batch killed with SIGKILL at each step of its commit, then restarted: every image
ends in exactly one scores file, processed once, and no temp file is left.

A child process runs :func:`genaug.image_batch.score_image_folder` over a few PNG files and kills
itself at one exact step (fault injection): just before the ledger records the batch, just
after it records it (the scores file is still a temp file), or just after the scores file is
renamed into place (the images are not moved yet). The restart is a normal run whose ledger
treats records older than ``stale_after`` (small here) as a crashed run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genaug.image_batch import score_image_folder
from genaug.image_detector import ImageAnomalyDetector
from genaug.ledger import DONE, Ledger, file_digest

from .conftest import age, batch_folders, listing

ROOT = Path(__file__).resolve().parents[2]
STALE = 0.5

CHILD = """
import json, os, signal, sys
from genaug import image_batch
from genaug.image_detector import ImageAnomalyDetector
from genaug.ledger import Ledger

cfg = json.loads(sys.argv[1])
kill = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if cfg["kill"] == "before-record":
    Ledger.finish_many = kill
elif cfg["kill"] == "after-record":
    real = Ledger.finish_many
    def finish_many(self, *args, **kwargs):
        real(self, *args, **kwargs)
        kill()
    Ledger.finish_many = finish_many
elif cfg["kill"] == "after-rename":
    image_batch._move = kill
root = cfg["root"]
image_batch.score_image_folder(
    f"{root}/incoming", ImageAnomalyDetector.load(cfg["model"]), out=f"{root}/out",
    processed=f"{root}/processed", quarantine=f"{root}/quarantine",
    ledger=Ledger(f"{root}/ledger.sqlite"), min_age=0)
print("finished")
"""
STEPS = ["before-record", "after-record", "after-rename"]


@pytest.fixture(scope="module")
def image_model(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 60, (60, 8, 8)).astype(np.uint8)
    det = ImageAnomalyDetector(max_steps=20, base=4, latent=2, n_members=1, random_state=0,
                               device="cpu").fit(X)
    return det.save(tmp_path_factory.mktemp("img") / "model")


def _images(incoming: Path, n: int) -> dict[str, str]:
    rng = np.random.default_rng(1)
    names = {}
    for i in range(n):
        p = incoming / f"img{i}.png"
        Image.fromarray(rng.integers(0, 60, (8, 8)).astype(np.uint8)).save(p)
        age(p, 60 - i)
        names[p.name] = file_digest(p)
    return names


@pytest.mark.parametrize("kill", STEPS)
def test_sigkill_at_each_image_commit_step_is_recovered(tmp_path, image_model, kill):
    d = batch_folders(tmp_path)
    names = _images(d["incoming"], 4)
    cfg = {"root": str(tmp_path), "model": str(image_model), "kill": kill}
    with open(tmp_path / "child.log", "w") as log:
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log,
                              stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "child.log").read_text()
    assert listing(d["incoming"]) == sorted(names)  # nothing moved before the crash
    visible = [p for p in listing(d["out"]) if p.endswith(".parquet") and not p.startswith(".")]
    assert len(visible) == (1 if kill == "after-rename" else 0)
    time.sleep(STALE + 0.1)
    det = ImageAnomalyDetector.load(image_model)
    res = score_image_folder(d["incoming"], det, out=d["out"], processed=d["processed"],
                             quarantine=d["quarantine"],
                             ledger=Ledger(tmp_path / "ledger.sqlite", stale_after=STALE))
    if kill == "after-rename":  # recorded and written: only the moves were left
        assert (res.scored, sorted(res.duplicates)) == ([], sorted(names))
    else:  # nothing usable was written: the images are scored again
        assert (sorted(res.scored), res.duplicates) == (sorted(names), [])
    assert listing(d["incoming"]) == [] and listing(d["quarantine"]) == []
    assert listing(d["processed"]) == sorted(names)
    out_files = listing(d["out"])
    assert not [p for p in out_files if p.endswith(".tmp")], out_files
    parquet = [p for p in out_files if p.endswith(".scores.parquet")]
    assert len(parquet) == 1, out_files
    scores = pd.read_parquet(d["out"] / parquet[0])
    assert sorted(scores["file"]) == sorted(names)  # each image exactly once
    assert dict(zip(scores["file"], scores["sha256"])) == names
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert {ledger.record(s)[0] for s in names.values()} == {DONE}
    assert {ledger.record(s)[2] for s in names.values()} == {str((d["out"] / parquet[0]).resolve())}
