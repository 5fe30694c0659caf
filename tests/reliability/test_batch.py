"""Incoming-folder scoring: quarantine with reasons, exactly-once processing, duplicates."""

import json
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest

from genaug import AnomalyDetector
from genaug.batch import score_incoming
from genaug.ledger import Ledger

from ..conftest import mixed_frame


@pytest.fixture(scope="module")
def detector():
    df = mixed_frame(n=300, seed=11).drop(columns="is_anomaly")
    return AnomalyDetector(random_state=0, max_steps=40, n_members=1,
                           handle_unknown="keep").fit(df)


def _age(path, seconds=60):
    t = time.time() - seconds
    os.utime(path, (t, t))


def _folders(tmp_path):
    d = {k: tmp_path / k for k in ("incoming", "out", "processed", "quarantine")}
    for p in d.values():
        p.mkdir()
    return d


def _write_inputs(incoming):
    good = mixed_frame(n=50, seed=12).drop(columns="is_anomaly")
    good.to_parquet(incoming / "good1.parquet")
    good.head(20).to_csv(incoming / "good2.csv", index=False)
    good.drop(columns="colour").to_parquet(incoming / "missing_col.parquet")
    (incoming / "empty.csv").write_bytes(b"")
    (incoming / "garbage.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    bad_type = good.copy()
    bad_type["a"] = bad_type["a"].astype(str)
    bad_type.loc[3, "a"] = "n/a?"
    bad_type.to_csv(incoming / "text_in_numeric.csv", index=False)
    inf = good.copy()
    inf.loc[0, "b"] = np.inf
    inf.to_parquet(incoming / "inf.parquet")
    for p in incoming.iterdir():
        _age(p)


def _run(d, detector, ledger, **kw):
    return score_incoming(d["incoming"], detector, out=d["out"], processed=d["processed"],
                          quarantine=d["quarantine"], ledger=ledger, **kw)


def test_bad_files_are_quarantined_and_the_batch_goes_on(tmp_path, detector):
    d = _folders(tmp_path)
    _write_inputs(d["incoming"])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    res = _run(d, detector, ledger)
    assert sorted(res.scored) == ["good1.parquet", "good2.csv"]
    assert sorted(res.quarantined) == ["empty.csv", "garbage.parquet", "inf.parquet",
                                       "missing_col.parquet", "text_in_numeric.csv"]
    assert list(d["incoming"].iterdir()) == []
    scores = pd.read_parquet(d["out"] / "good1.scores.parquet")
    assert len(scores) == 50 and {"row", "score", "is_anomaly", "contrib_a"} <= set(scores)
    reasons = {p.name: json.loads(p.read_text()) for p in d["quarantine"].glob("*.reason.json")}
    assert set(reasons) == {f"{n}.reason.json" for n in res.quarantined}
    for r in reasons.values():
        assert set(r) >= {"file", "column", "expected", "found", "error"}
    assert reasons["missing_col.parquet.reason.json"]["column"] == "colour"
    assert reasons["missing_col.parquet.reason.json"]["error"] == "MissingColumnError"
    assert reasons["text_in_numeric.csv.reason.json"]["column"] == "a"
    assert reasons["inf.parquet.reason.json"]["error"] == "NonFiniteError"
    assert reasons["empty.csv.reason.json"]["error"] == "EmptyInputError"
    assert reasons["garbage.parquet.reason.json"]["error"] == "CorruptFileError"
    assert not list(d["out"].glob(".*"))  # no temp files left


def test_rerun_and_duplicate_content_are_not_scored_again(tmp_path, detector):
    d = _folders(tmp_path)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    df = mixed_frame(n=30, seed=13).drop(columns="is_anomaly")
    df.to_parquet(d["incoming"] / "a.parquet")
    _age(d["incoming"] / "a.parquet")
    assert _run(d, detector, ledger).scored == ["a.parquet"]
    first = (d["out"] / "a.scores.parquet").stat().st_mtime_ns
    assert _run(d, detector, ledger).scored == []  # nothing new
    # the same bytes under another name: recognised by content, not scored again
    (d["incoming"] / "copy.parquet").write_bytes((d["processed"] / "a.parquet").read_bytes())
    _age(d["incoming"] / "copy.parquet")
    res = _run(d, detector, ledger)
    assert res.duplicates == ["copy.parquet"] and res.scored == []
    assert not (d["out"] / "copy.scores.parquet").exists()
    assert (d["out"] / "a.scores.parquet").stat().st_mtime_ns == first


def test_file_still_being_written_is_skipped(tmp_path, detector):
    d = _folders(tmp_path)
    mixed_frame(n=30, seed=14).drop(columns="is_anomaly").to_csv(d["incoming"] / "new.csv")
    res = _run(d, detector, Ledger(tmp_path / "l.sqlite"), min_age=30)
    assert res.skipped == ["new.csv"] and (d["incoming"] / "new.csv").exists()


def test_concurrent_runs_process_each_file_once(tmp_path, detector):
    d = _folders(tmp_path)
    for i in range(8):
        p = d["incoming"] / f"f{i}.parquet"
        mixed_frame(n=20, seed=100 + i).drop(columns="is_anomaly").to_parquet(p)
        _age(p)
    results = []

    def worker():
        results.append(_run(d, detector, Ledger(tmp_path / "ledger.sqlite")))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3  # every run finished (none died opening the fresh ledger)
    scored = [f for r in results for f in r.scored]
    assert sorted(scored) == [f"f{i}.parquet" for i in range(8)]  # each exactly once
    assert len(list(d["out"].glob("*.scores.parquet"))) == 8


def test_stale_claim_from_a_crashed_run_is_taken_over(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite", stale_after=0.0)
    assert ledger.claim("abc", "x.csv")
    assert ledger.claim("abc", "x.csv")  # stale at once: a crashed run's claim is retaken
    ledger.finish("abc", "done")
    assert not ledger.claim("abc", "x.csv")
    fresh = Ledger(tmp_path / "m.sqlite")
    assert fresh.claim("d", "y.csv") and not fresh.claim("d", "y.csv")


def test_batch_command_through_the_flow(prefect_api, mlflow_store, detector):
    import contextlib
    import io

    from genaug.cli import main

    model = detector.save(mlflow_store / "model")
    inc = mlflow_store / "incoming"
    inc.mkdir()
    mixed_frame(n=40, seed=15).drop(columns="is_anomaly").to_parquet(inc / "ok.parquet")
    (inc / "bad.csv").write_text("a,b\n1,2\n")
    for p in inc.iterdir():
        _age(p)
    argv = ["batch", "--incoming", str(inc), "--model", str(model),
            "--out", str(mlflow_store / "scores"), "--processed", str(mlflow_store / "done"),
            "--quarantine", str(mlflow_store / "q"), "--ledger", str(mlflow_store / "l.db")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main(argv)
    assert rc == 1  # something was quarantined
    assert "quarantined: bad.csv" in out.getvalue()
    assert (mlflow_store / "scores" / "ok.scores.parquet").exists()
    reason = json.loads((mlflow_store / "q" / "bad.csv.reason.json").read_text())
    assert reason["error"] == "MissingColumnError"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0  # nothing new: a clean run


def test_streamed_scoring_equals_whole_file_scoring(tmp_path, detector):
    from genaug.scoring import score_file

    df = mixed_frame(n=1000, seed=16).drop(columns="is_anomaly")
    df.to_parquet(tmp_path / "big.parquet", row_group_size=100)
    res = score_file(tmp_path / "big.parquet", detector, tmp_path / "s.parquet", batch_rows=128,
                     sample_rows=300)
    out = pd.read_parquet(tmp_path / "s.parquet")
    assert res.n_rows == 1000 and len(res.sample) == 300
    assert out["row"].tolist() == list(range(1000))
    np.testing.assert_allclose(out["score"], detector.decision_function(df), rtol=1e-6)


def test_bad_batch_late_in_the_file_leaves_no_output(tmp_path, detector):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genaug.errors import NonFiniteError
    from genaug.scoring import score_file

    df = mixed_frame(n=600, seed=17).drop(columns="is_anomaly")
    df.loc[550, "a"] = np.inf
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "x.parquet",
                   row_group_size=100)
    with pytest.raises(NonFiniteError, match="x.parquet"):
        score_file(tmp_path / "x.parquet", detector, tmp_path / "out" / "x.scores.parquet",
                   batch_rows=100)
    assert list((tmp_path / "out").iterdir()) == []


def test_batch_command_stale_after_takes_over_a_crashed_runs_claim(prefect_api, mlflow_store,
                                                                    detector):
    import contextlib
    import io
    import sqlite3

    from genaug.cli import main
    from genaug.ledger import file_digest

    model = detector.save(mlflow_store / "model")
    inc = mlflow_store / "incoming"
    inc.mkdir()
    mixed_frame(n=40, seed=18).drop(columns="is_anomaly").to_parquet(inc / "ok.parquet")
    _age(inc / "ok.parquet")
    ledger = mlflow_store / "l.db"
    # a run that claimed the file 2 minutes ago and was killed before finishing it
    assert Ledger(ledger).claim(file_digest(inc / "ok.parquet"), "ok.parquet")
    with contextlib.closing(sqlite3.connect(ledger)) as db, db:
        db.execute("UPDATE files SET claimed_at = claimed_at - 120")
    scores = mlflow_store / "scores" / "ok.scores.parquet"
    argv = ["batch", "--incoming", str(inc), "--model", str(model),
            "--out", str(mlflow_store / "scores"), "--processed", str(mlflow_store / "done"),
            "--quarantine", str(mlflow_store / "q"), "--ledger", str(ledger)]
    quiet = (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()))
    with quiet[0], quiet[1]:
        assert main(argv) == 0  # default stale_after (1 h): the claim is live, left alone
    assert not scores.exists() and (inc / "ok.parquet").exists()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*argv, "--stale-after", "60"]) == 0  # 120 s > 60 s: taken over
    assert scores.exists() and not (inc / "ok.parquet").exists()
    assert len(pd.read_parquet(scores)) == 40


def test_many_runs_open_a_fresh_ledger_at_once(tmp_path):
    """Runs starting together on a new ledger: SQLite refuses all but one switch to WAL at
    once ("database is locked", no busy wait); the others must wait and retry, not die."""
    for round_ in range(15):
        path = tmp_path / f"ledger{round_}.sqlite"
        gate = threading.Barrier(6)
        errors: list[BaseException] = []

        def opener(gate=gate, path=path, errors=errors):
            gate.wait()
            try:
                Ledger(path).status("x")
            except BaseException as e:  # noqa: BLE001 (collected for the assertion)
                errors.append(e)

        threads = [threading.Thread(target=opener) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {round_}: {errors[0]!r}"


def test_run_whose_file_a_concurrent_run_moved_after_the_record_still_counts_it_scored(
        tmp_path, detector):
    """Run B lists the file just after run A records it done and moves it as a duplicate; A's
    own move then finds nothing. A must still report it scored (not failed), B a duplicate."""
    from genaug.batch import DUPLICATE, SCORED, process_file

    d = _folders(tmp_path)
    p = d["incoming"] / "f.parquet"
    mixed_frame(n=20, seed=7).drop(columns="is_anomaly").to_parquet(p)
    _age(p)
    folders = {"out": d["out"], "processed": d["processed"], "quarantine": d["quarantine"]}
    other: list = []

    class Interleaved(Ledger):
        def finish(self, *args, **kwargs):
            super().finish(*args, **kwargs)
            other.append(process_file(p, detector, ledger=Ledger(self.path), min_age=0,
                                      **folders))

    outcome = process_file(p, detector, ledger=Interleaved(tmp_path / "l.sqlite"), min_age=0,
                           **folders)
    assert [o.status for o in other] == [DUPLICATE]
    assert outcome.status == SCORED
    assert sorted(x.name for x in d["processed"].iterdir()) == ["f.parquet"]
    assert not any(d["incoming"].iterdir())
