"""Tampered model folders: a changed, truncated or pickle-carrying ``weights.pt`` is refused.

``config.json`` records the SHA-256 of ``weights.pt``; ``torch.load(weights_only=True)`` refuses
anything but tensors. The pickle cases recompute the checksum, so only the second guard stands
between the file and code execution: the payload would create a marker file if it ran.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from genaug import AnomalyDetector, ModelFormatError

from .conftest import age, batch_folders, clean_frame, listing


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _copy(model: Path, dst: Path) -> Path:
    return Path(shutil.copytree(model, dst))


def _reseal(folder: Path) -> None:
    """Write the weights' new checksum into config.json, as a careful attacker would."""
    cfg = json.loads((folder / "config.json").read_text())
    cfg["weights_sha256"] = hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(cfg))


def _flip_byte(folder: Path) -> None:
    data = bytearray((folder / "weights.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "weights.pt").write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    data = (folder / "weights.pt").read_bytes()
    (folder / "weights.pt").write_bytes(data[: len(data) * 2 // 3])


def _pickle_only(folder: Path, marker: Path) -> None:
    torch.save(_Payload(marker), folder / "weights.pt")
    _reseal(folder)


def _pickle_among_tensors(folder: Path, marker: Path) -> None:
    tensors = torch.load(folder / "weights.pt", weights_only=True)
    torch.save({**tensors, "extra": _Payload(marker)}, folder / "weights.pt")
    _reseal(folder)


@pytest.mark.parametrize("damage, match", [
    (_flip_byte, "checksum does not match"),
    (_truncate, "checksum does not match"),
    (lambda f: (_truncate(f), _reseal(f)), "refused to load"),
], ids=["flipped byte", "truncated", "truncated, checksum resealed"])
def test_changed_or_truncated_weights_are_refused(strict_model, tmp_path, damage, match):
    folder = _copy(strict_model, tmp_path / "model")
    damage(folder)
    with pytest.raises(ModelFormatError, match=match) as ei:
        AnomalyDetector.load(folder)
    assert str(folder / "weights.pt") in str(ei.value)


@pytest.mark.parametrize("plant", [_pickle_only, _pickle_among_tensors],
                         ids=["pickle only", "pickle among tensors"])
def test_pickle_payload_is_refused_and_never_runs(strict_model, tmp_path, plant):
    folder = _copy(strict_model, tmp_path / "model")
    marker = tmp_path / "payload-ran"
    plant(folder, marker)
    # the payload is live: an unguarded load would run it (checked here, then undone)
    torch.load(folder / "weights.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ModelFormatError, match="refused to load") as ei:
        AnomalyDetector.load(folder)
    assert str(folder / "weights.pt") in str(ei.value)
    assert "only plain tensors" in str(ei.value)
    assert not marker.exists()


def test_batch_command_with_a_pickled_model_fails_and_moves_nothing(prefect_api, mlflow_store,
                                                                   strict_model):
    from genaug.cli import main

    folder = _copy(strict_model, mlflow_store / "model")
    marker = mlflow_store / "payload-ran"
    _pickle_only(folder, marker)
    d = batch_folders(mlflow_store / "batch")
    clean_frame(30, seed=51).to_parquet(d["incoming"] / "ok.parquet")
    (d["incoming"] / "bad.csv").write_text("a,b\n1,2\n")
    before = {p.name: p.read_bytes() for p in d["incoming"].iterdir()}
    for p in d["incoming"].iterdir():
        age(p)
    argv = ["batch", "--incoming", str(d["incoming"]), "--model", str(folder),
            "--out", str(d["out"]), "--processed", str(d["processed"]),
            "--quarantine", str(d["quarantine"]), "--ledger", str(mlflow_store / "l.sqlite")]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    assert rc == 2
    message = err.getvalue().strip().splitlines()[-1]
    assert message.startswith("genaug: error:") and "weights.pt" in message
    assert "refused to load" in message
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in d["incoming"].iterdir()} == before
    for k in ("out", "processed", "quarantine"):
        assert listing(d[k]) == []
