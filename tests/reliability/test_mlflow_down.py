"""The MLflow store unavailable: flows fail with a clear error after their retries, touch nothing.

Real flow runs (Prefect test API) against a store that cannot be used: a URI MLflow cannot open,
or a real SQLite store locked by another connection (``BEGIN EXCLUSIVE`` held by the test).
Retry delays are set to zero through ``Task.with_options``; the retry count is the flows' own.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path

import pytest

from genaug.errors import TrackingUnavailableError

from .conftest import age, batch_folders, clean_frame, listing


@pytest.fixture
def no_retry_delay(monkeypatch):
    """The flows' tasks as they are, but retried at once (the flows look them up by name)."""
    import pipelines.batch
    import pipelines.train_detector as train

    monkeypatch.setattr(pipelines.batch, "process_folder",
                        pipelines.batch.process_folder.with_options(retry_delay_seconds=0))
    for name in ("fit_detector", "log_and_register"):
        monkeypatch.setattr(train, name, getattr(train, name).with_options(retry_delay_seconds=0))


@contextlib.contextmanager
def locked(db_path: Path):
    """Hold an exclusive lock on a SQLite database, as a long write by another process would."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def _task_runs(state) -> dict[str, int]:
    """Task name -> how many times it ran, in the flow run behind ``state``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r.run_count for r in runs}


def _incoming(root: Path) -> tuple[dict[str, Path], dict[str, bytes]]:
    d = batch_folders(root)
    clean_frame(30, seed=61).to_parquet(d["incoming"] / "ok.parquet")
    (d["incoming"] / "bad.csv").write_text("a,b\n1,2\n")
    for p in d["incoming"].iterdir():
        age(p)
    return d, {p.name: p.read_bytes() for p in d["incoming"].iterdir()}


def _run_batch_flow(d: dict[str, Path], model: Path, ledger: Path):
    from pipelines.batch import score_incoming_flow

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return score_incoming_flow(
            incoming=str(d["incoming"]), model=str(model), out=str(d["out"]),
            processed=str(d["processed"]), quarantine=str(d["quarantine"]), ledger=str(ledger),
            min_age=1.0, log_to_mlflow=True, return_state=True)


def _assert_untouched(d: dict[str, Path], before: dict[str, bytes], ledger: Path) -> None:
    assert {p.name: p.read_bytes() for p in d["incoming"].iterdir()} == before
    for k in ("out", "processed", "quarantine"):
        assert listing(d[k]) == [], k
    assert not ledger.exists()  # nothing was even claimed


@pytest.mark.parametrize("uri", ["sqlite:///{tmp}/a-file/mlflow.db",
                                 "sqlite:///{tmp}/no/such/mlflow.db", "nosuchscheme://host/store"],
                         ids=["under a file", "missing folder", "unsupported scheme"])
def test_batch_flow_with_a_bad_tracking_uri_fails_after_retries_and_moves_nothing(
        prefect_api, tmp_path, monkeypatch, no_retry_delay, strict_model, uri):
    (tmp_path / "a-file").write_text("not a folder")
    uri = uri.format(tmp=tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    d, before = _incoming(tmp_path / "batch")
    state = _run_batch_flow(d, strict_model, tmp_path / "ledger.sqlite")
    assert state.is_failed()
    with pytest.raises(TrackingUnavailableError) as ei:
        state.result()
    assert ei.value.uri == uri and uri in str(ei.value)
    assert _task_runs(state) == {"process_folder": 3}  # the first try and two retries
    _assert_untouched(d, before, tmp_path / "ledger.sqlite")


def test_batch_command_names_the_unavailable_store(prefect_api, tmp_path, monkeypatch,
                                                   no_retry_delay, strict_model):
    from genaug.cli import main

    uri = f"sqlite:///{tmp_path}/missing/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    d, before = _incoming(tmp_path / "batch")
    argv = ["batch", "--incoming", str(d["incoming"]), "--model", str(strict_model),
            "--out", str(d["out"]), "--processed", str(d["processed"]),
            "--quarantine", str(d["quarantine"]), "--ledger", str(tmp_path / "l.sqlite")]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(argv)
    assert rc == 2
    last = err.getvalue().strip().splitlines()[-1]
    assert last.startswith("genaug: error: MLflow tracking store") and uri in last
    assert "is missing or not writable" in last
    _assert_untouched(d, before, tmp_path / "l.sqlite")


def test_batch_flow_with_a_locked_store_fails_then_succeeds_once_unlocked(
        prefect_api, mlflow_store, no_retry_delay, strict_model):
    d, before = _incoming(mlflow_store / "batch")
    ledger = mlflow_store / "ledger.sqlite"
    with locked(mlflow_store / "mlflow.db"):
        state = _run_batch_flow(d, strict_model, ledger)
    assert state.is_failed()
    with pytest.raises(TrackingUnavailableError, match="database is locked"):
        state.result()
    assert _task_runs(state) == {"process_folder": 3}
    _assert_untouched(d, before, ledger)

    state = _run_batch_flow(d, strict_model, ledger)  # the lock is gone: a normal run
    res = state.result()
    assert res["scored"] == ["ok.parquet"] and res["quarantined"] == ["bad.csv"]
    from genaug import tracking

    runs = tracking.client().search_runs(
        [tracking.client().get_experiment_by_name(tracking.SCORE_EXPERIMENT).experiment_id])
    kinds = sorted(r.data.tags.get("genaug.kind") for r in runs)
    assert kinds == ["batch", "scoring"]  # the batch totals and the scored file's run (not bad.csv)


def test_train_flow_with_a_locked_store_fails_before_fitting(prefect_api, mlflow_store,
                                                             no_retry_delay):
    from pipelines.train_detector import train_detector

    data = mlflow_store / "train.parquet"
    clean_frame(200, seed=62).to_parquet(data)
    with locked(mlflow_store / "mlflow.db"), contextlib.redirect_stdout(io.StringIO()):
        state = train_detector(data=str(data), model_name="locked", target=None,
                               params={"max_steps": 20, "n_members": 1}, return_state=True)
    assert state.is_failed()
    with pytest.raises(TrackingUnavailableError, match="database is locked"):
        state.result()
    assert _task_runs(state) == {"fit_detector": 3}  # no fit finished, nothing to log
    from genaug import tracking

    assert tracking.client().search_registered_models() == []


def test_check_store_passes_a_usable_store_and_names_a_locked_one(mlflow_store):
    from genaug import tracking

    assert tracking.check_store() == f"sqlite:///{mlflow_store / 'mlflow.db'}"
    fresh = f"sqlite:///{mlflow_store / 'new' / 'x.db'}"
    (mlflow_store / "new").mkdir()
    assert tracking.check_store(fresh) == fresh  # MLflow creates it on first use
    assert not (mlflow_store / "new" / "x.db").exists()  # the check wrote nothing
    with locked(mlflow_store / "mlflow.db"), pytest.raises(TrackingUnavailableError) as ei:
        tracking.check_store(timeout=0.1)
    assert "database is locked" in str(ei.value) and str(mlflow_store) in str(ei.value)


@contextlib.contextmanager
def http_server(status: int):
    """A real HTTP server on a free loopback port answering every GET with ``status``."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_check_store_probes_an_http_tracking_server_quickly():
    import socket
    import time

    from genaug import tracking

    with http_server(200) as uri:
        assert tracking.check_store(uri) == uri
    with http_server(503) as uri, pytest.raises(TrackingUnavailableError, match="HTTP 503"):
        tracking.check_store(uri)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    t0 = time.perf_counter()
    with pytest.raises(TrackingUnavailableError, match="unreachable") as ei:
        tracking.check_store(closed, timeout=1.0)
    assert closed in str(ei.value) and time.perf_counter() - t0 < 5  # no minutes of retries
