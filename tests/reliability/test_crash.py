"""Processes killed with SIGKILL, then restarted: every input scored exactly once, no torn output.

Batch scoring runs in a real child process (``score_incoming`` over several Parquet files) that
is killed from outside mid-way, or that kills itself with SIGKILL at one exact step of the
commit sequence (fault injection: the child wraps ``Ledger.finish``). The restart is a normal
run whose ledger treats claims older than ``stale_after`` (set small here) as a crashed run's.
Training is killed while it logs the model to MLflow; the ``champion`` alias must keep pointing
at a complete, loadable model, and a rerun must finish and move it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from genaug.batch import input_digest, score_incoming
from genaug.ledger import DONE, QUARANTINED, Ledger, file_digest

from .conftest import age, batch_folders, clean_frame, listing

ROOT = Path(__file__).resolve().parents[2]
STALE = 0.5  # seconds after which the restart takes a dead run's claim over

CHILD = """
import json, os, signal, sys
from genaug import AnomalyDetector
from genaug.batch import score_incoming
from genaug.ledger import Ledger

cfg = json.loads(sys.argv[1])
if cfg.get("kill"):  # fault injection: SIGKILL just before or just after the ledger records
    real = Ledger.finish
    def finish(self, *args, **kwargs):
        if cfg["kill"] == "after-finish":
            real(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    Ledger.finish = finish
root = cfg["root"]
score_incoming(f"{root}/incoming", AnomalyDetector.load(cfg["model"]), out=f"{root}/out",
               processed=f"{root}/processed", quarantine=f"{root}/quarantine",
               ledger=Ledger(f"{root}/ledger.sqlite"), min_age=0, batch_rows=cfg["batch_rows"])
print("finished")
"""


def _child(root: Path, model: Path, kill: str | None = None, batch_rows: int = 100):
    cfg = {"root": str(root), "model": str(model), "kill": kill, "batch_rows": batch_rows}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(root / "child.log", "w") as log:  # a file, not a pipe: a full pipe would block it
        return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], cwd=root,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def _ledger_rows(root: Path) -> list[tuple[str, str]]:
    path = root / "ledger.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute("SELECT digest, status FROM files").fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        db.close()


def _write_inputs(incoming: Path, n_files: int, n_rows: int) -> dict[str, tuple[str, int]]:
    """Parquet inputs (small row groups: scored in many batches); name -> (digest, rows)."""
    inputs = {}
    for i in range(n_files):
        p = incoming / f"part{i}.parquet"
        clean_frame(n_rows, seed=200 + i).to_parquet(p, row_group_size=500)
        age(p, 60 - i)  # distinct mtimes: a fixed processing order
        inputs[p.name] = (file_digest(p), n_rows)
    return inputs


def _restart(root: Path, detector, **kw):
    d = batch_folders(root)
    return score_incoming(d["incoming"], detector, out=d["out"], processed=d["processed"],
                          quarantine=d["quarantine"], ledger=Ledger(root / "ledger.sqlite",
                                                                    stale_after=STALE),
                          min_age=0, **kw)


def assert_exactly_once(root: Path, good: dict[str, tuple[str, int]],
                        bad: dict[str, str] | None = None) -> None:
    """Each good input scored once (one output, done once, in processed once); bad ones
    quarantined once with a reason; nothing else anywhere (no temp or duplicate file)."""
    bad = bad or {}
    d = batch_folders(root)
    assert listing(d["incoming"]) == []
    assert listing(d["processed"]) == sorted(good)
    assert listing(d["quarantine"]) == sorted([*bad, *(f"{n}.reason.json" for n in bad)])
    assert listing(d["out"]) == sorted(f"{Path(n).stem}.scores.parquet" for n in good)
    for name, (digest, n_rows) in good.items():
        out = d["out"] / f"{Path(name).stem}.scores.parquet"
        scores = pd.read_parquet(out)
        assert scores["row"].tolist() == list(range(n_rows)), name
        assert np.isfinite(scores["score"]).all()
        assert input_digest(out) == digest == file_digest(d["processed"] / name)
    rows = _ledger_rows(root)
    expected = {digest: DONE for digest, _ in good.values()} | {g: QUARANTINED
                                                                for g in bad.values()}
    assert len(rows) == len(expected) and dict(rows) == expected


def test_sigkill_mid_batch_then_restart_scores_each_file_once(tmp_path, strict_detector,
                                                             strict_model):
    d = batch_folders(tmp_path)
    inputs = _write_inputs(d["incoming"], n_files=4, n_rows=10_000)
    proc = _child(tmp_path, strict_model)
    deadline = time.time() + 60
    try:
        # kill once a file is done and the next one is half-written in a temp file
        while True:
            statuses = [s for _, s in _ledger_rows(tmp_path)]
            temps = [p for p in d["out"].glob(".*.tmp") if p.stat().st_size > 0]
            if DONE in statuses and "claimed" in statuses and temps:
                break
            assert proc.poll() is None, (tmp_path / "child.log").read_text()[-2000:]
            assert time.time() < deadline, "the child never reached the second file"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # the crash left a claim and a temp file; finished outputs are complete
    done_before = {n: (d["out"] / f"{Path(n).stem}.scores.parquet").stat().st_mtime_ns
                   for n in listing(d["processed"])}
    assert done_before and len(done_before) < len(inputs)
    assert [s for _, s in _ledger_rows(tmp_path)].count("claimed") == 1
    assert list(d["out"].glob(".*.tmp"))
    # a restart inside the stale window leaves the dead run's claim alone
    res = score_incoming(d["incoming"], strict_detector, out=d["out"], processed=d["processed"],
                         quarantine=d["quarantine"], ledger=Ledger(tmp_path / "ledger.sqlite"),
                         min_age=0, batch_rows=1000)
    assert len(res.scored) == len(inputs) - len(done_before) - 1
    time.sleep(STALE + 0.1)
    res = _restart(tmp_path, strict_detector, batch_rows=1000)
    assert len(res.scored) == 1 and not res.duplicates and not res.failed
    assert_exactly_once(tmp_path, inputs)
    for name, mtime in done_before.items():  # scored before the crash: not scored again
        assert (d["out"] / f"{Path(name).stem}.scores.parquet").stat().st_mtime_ns == mtime


STEPS = [(kind, kill) for kind in ("good", "bad") for kill in ("before-finish", "after-finish")]


def test_sigkill_at_each_commit_step_is_recovered(tmp_path, strict_detector, strict_model):
    """One child per step, all run side by side: a good or a bad input, killed just before or
    just after the ledger records its outcome (its scores file or quarantine reason is written)."""
    procs = {}
    for kind, kill in STEPS:
        root = tmp_path / f"{kind}-{kill}"
        d = batch_folders(root)
        df = clean_frame(300, seed=31)
        (df if kind == "good" else df.assign(a=np.inf)).to_parquet(d["incoming"] / "one.parquet")
        age(d["incoming"] / "one.parquet")
        procs[kind, kill] = _child(root, strict_model, kill=kill)
    for (kind, kill), proc in procs.items():
        proc.wait(timeout=60)
        log = (tmp_path / f"{kind}-{kill}" / "child.log").read_text()
        assert proc.returncode == -signal.SIGKILL, log
    time.sleep(STALE + 0.1)
    for kind, kill in STEPS:
        root = tmp_path / f"{kind}-{kill}"
        d = batch_folders(root)
        digest = file_digest(d["incoming"] / "one.parquet")  # never moved before the crash
        recorded = DONE if kind == "good" else QUARANTINED
        assert dict(_ledger_rows(root))[digest] == (
            "claimed" if kill == "before-finish" else recorded)
        res = _restart(root, strict_detector)
        # before: the output or reason was in place and is redone over itself; after: the
        # outcome was recorded and only the move was left (done as for a duplicate)
        redone, moved = (["one.parquet"], []) if kill == "before-finish" else ([], ["one.parquet"])
        if kind == "good":
            assert (res.scored, res.duplicates) == (redone, moved)
            assert_exactly_once(root, {"one.parquet": (digest, 300)})
        else:
            assert (res.quarantined, res.duplicates) == (redone, moved)
            assert_exactly_once(root, {}, bad={"one.parquet": digest})
            reason = json.loads((d["quarantine"] / "one.parquet.reason.json").read_text())
            assert reason["error"] == "NonFiniteError"


def _logged_models(store: Path) -> set[str]:
    db = sqlite3.connect(store / "mlflow.db", timeout=10)
    try:
        return {r[0] for r in db.execute("SELECT model_id FROM logged_models")}
    finally:
        db.close()


def _assert_every_version_loads(name: str, sample: pd.DataFrame) -> list[int]:
    from genaug import tracking

    versions = sorted(int(v.version) for v in
                      tracking.client().search_model_versions(f"name='{name}'"))
    for v in versions:
        det, _ = tracking.load_detector(f"models:/{name}/{v}")
        assert np.isfinite(det.decision_function(sample)).all()
    return versions


def test_sigkill_while_training_logs_the_model_keeps_champion_loadable(prefect_api, mlflow_store):
    """v1 is champion; a second training is killed while its model is being written to MLflow.
    The alias still names v1, every registered version loads and scores, and a rerun finishes."""
    from prefect.settings import PREFECT_API_URL

    from genaug import tracking
    from pipelines.train_detector import train_detector

    data = mlflow_store / "train.parquet"
    sample = clean_frame(300, seed=41)
    sample.to_parquet(data)
    params = {"max_steps": 30, "n_members": 1}
    train_detector(data=str(data), model_name="crashy", target=None, params=params)
    known = _logged_models(mlflow_store)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_API_URL=PREFECT_API_URL.value())
    argv = [sys.executable, "-m", "genaug.cli", "train", "--data", str(data), "--name", "crashy",
            "--params", json.dumps(params)]
    with open(mlflow_store / "child.log", "w") as log:
        proc = subprocess.Popen(argv, cwd=mlflow_store, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    try:
        while not (new := _logged_models(mlflow_store) - known):  # the model upload began
            assert proc.poll() is None, (mlflow_store / "child.log").read_text()[-3000:]
            assert time.time() < deadline, "the child never started logging its model"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (killed,) = new
    assert str(tracking.client().get_logged_model(killed).status) != "READY"  # torn upload
    assert _assert_every_version_loads("crashy", sample) == [1]  # the killed one is not in
    det, desc = tracking.load_detector("models:/crashy@champion")
    assert "version 1" in desc and np.isfinite(det.decision_function(sample)).all()

    c = tracking.client()
    exp = c.get_experiment_by_name(tracking.TRAIN_EXPERIMENT).experiment_id
    (orphan,) = c.search_runs([exp], "attributes.status = 'RUNNING'")  # the killed run's
    rec = train_detector(data=str(data), model_name="crashy", target=None, params=params)
    assert rec["promoted"] and rec["version"] == 2
    orphan = c.get_run(orphan.info.run_id)  # closed by the next training, not left RUNNING
    assert orphan.info.status == "KILLED" and str(proc.pid) in orphan.data.tags["genaug.orphaned"]
    assert _assert_every_version_loads("crashy", sample) == [1, 2]
    det, desc = tracking.load_detector("models:/crashy@champion")
    assert "version 2" in desc and np.isfinite(det.decision_function(sample)).all()
