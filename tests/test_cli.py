"""The genaug command line, through real flow runs."""

import contextlib
import io
import json

import pandas as pd
import pytest

from genaug.cli import build_parser, main

from .conftest import mixed_frame


def test_parser_has_the_three_commands():
    p = build_parser()
    assert p.parse_args(["ui"]).port == 5000
    args = p.parse_args(["score", "--data", "x.csv"])
    assert args.model == "models:/genaug-detector@champion"
    with pytest.raises(SystemExit):
        p.parse_args(["train"])  # --data is required


def _run(argv: list[str]) -> tuple[int, str, str]:
    # not capsys: Prefect's log handler keeps the stream it first saw, and capsys closes its own
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_train_then_score_and_bad_file(prefect_api, mlflow_store):
    data = mlflow_store / "t.parquet"
    mixed_frame(n=300, seed=6).drop(columns="is_anomaly").to_parquet(data)
    rc, out, _ = _run(["train", "--data", str(data), "--name", "cli-model",
                       "--params", json.dumps({"max_steps": 60, "n_members": 1})])
    assert rc == 0
    assert '"promoted": true' in out
    target = mlflow_store / "s.parquet"
    rc, _, _ = _run(["score", "--data", str(data), "--model", "models:/cli-model@champion",
                     "--out", str(target)])
    assert rc == 0 and len(pd.read_parquet(target)) == 300

    bad = mlflow_store / "bad.csv"
    bad.write_text("a;b;colour\n1;2;red\n")
    rc, _, err = _run(["score", "--data", str(bad), "--model", "models:/cli-model@champion"])
    assert rc == 2
    assert "bad.csv" in err and "CSV" not in err.split("bad.csv")[0]


def test_batch_dask_option_parses():
    from genaug.cli import build_parser

    p = build_parser()
    assert p.parse_args(["batch"]).dask is None  # the default: sequential, in this process
    assert p.parse_args(["batch", "--dask"]).dask == "local"
    args = p.parse_args(["batch", "--dask", "tcp://10.0.0.5:8786", "--dask-workers", "4"])
    assert args.dask == "tcp://10.0.0.5:8786" and args.dask_workers == 4


def test_augment_command_writes_the_table_and_names_a_missing_target(prefect_api, mlflow_store):
    data = mlflow_store / "lab.parquet"
    mixed_frame(n=300, seed=8, n_anomalies=40).to_parquet(data)
    out = mlflow_store / "lab.aug.parquet"
    params = json.dumps({"max_steps": 40, "hidden": 32})
    rc, text, _ = _run(["augment", "--data", str(data), "--target", "is_anomaly", "--out",
                        str(out), "--strategy", "0.5", "--params", params])
    assert rc == 0 and json.loads(text[text.index("{"):])["rows_synthetic"] == 130 - 40
    assert pd.read_parquet(out)["is_synthetic"].sum() == 90
    rc, _, err = _run(["augment", "--data", str(data), "--target", "label", "--out",
                       str(mlflow_store / "x.parquet"), "--params", params])
    assert rc == 2 and "'label'" in err and "lab.parquet" in err
    args = build_parser().parse_args(["evaluate", "--data", "x", "--target", "y",
                                      "--arms", "none,vae+filter"])
    assert args.arms == "none,vae+filter" and args.splits == 5 and args.max_rows == 5000


def test_train_with_max_train_rows_logs_the_sample(prefect_api, mlflow_store):
    import mlflow

    from genaug.tracking import TRAIN_EXPERIMENT

    data = mlflow_store / "big.parquet"
    mixed_frame(n=1200, seed=7).drop(columns="is_anomaly").to_parquet(data, row_group_size=200)
    rc, out, _ = _run(["train", "--data", str(data), "--name", "sampled", "--seed", "3",
                       "--max-train-rows", "250",
                       "--params", json.dumps({"max_steps": 30, "n_members": 1})])
    assert rc == 0
    c = mlflow.MlflowClient()
    exp = c.get_experiment_by_name(TRAIN_EXPERIMENT)
    (run,) = c.search_runs([exp.experiment_id])
    params = run.data.params
    assert params["max_train_rows"] == "250" and params["n_rows"] == "250"
    assert params["n_file_rows"] == "1200"


def test_images_commands(prefect_api, mlflow_store):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.integers(0, 60, size=(60, 8, 8), dtype=np.uint8)
    y = np.repeat([0, 1], 30)
    X[y == 1, 2:6, 2:6] = 250
    np.savez(mlflow_store / "imgs.npz", X=X, y=y)
    gan = json.dumps({"max_steps": 10, "n_checks": 1, "base": 4, "latent": 4,
                      "check_samples": 4, "device": "cpu"})
    rc, text, _ = _run(["images", "evaluate", "--data", str(mlflow_store / "imgs.npz"),
                        "--positive", "1", "--rare-share", "0.2", "--splits", "2",
                        "--params", gan])
    res = json.loads(text[text.index("{\n"):])
    assert rc == 0 and res["positive"] == 1
    assert sorted({(r["arm"], r["classifier"]) for r in res["table"]}) == sorted(
        (a, c) for a in ("none", "random", "gan") for c in ("logreg", "hgb", "rf"))
    rc, _, err = _run(["images", "train", "--data", str(mlflow_store / "none.npz")])
    assert rc == 2 and "none.npz" in err


def test_generic_commands_take_images(prefect_api, mlflow_store):
    """``genaug train`` / ``score`` / ``augment`` see an .npz of images and use the image models;
    a table without ``--target`` is refused with a message."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    X = rng.integers(0, 60, size=(60, 8, 8), dtype=np.uint8)
    y = np.repeat([0, 1], 30)
    X[y == 1, 2:6, 2:6] = 250
    np.savez(mlflow_store / "imgs.npz", X=X, y=y)
    det = json.dumps({"max_steps": 30, "base": 4, "latent": 2, "n_members": 1, "device": "cpu"})
    rc, text, _ = _run(["train", "--data", str(mlflow_store / "imgs.npz"), "--params", det])
    res = json.loads(text[text.index("{\n"):])
    assert rc == 0 and res["registered_name"] == "genaug-image-detector" and res["promoted"]
    rc, text, _ = _run(["score", "--data", str(mlflow_store / "imgs.npz")])
    res = json.loads(text[text.index("{\n"):])
    assert rc == 0 and res["n_rows"] == 60 and "genaug-image-detector@champion" in res["model"]
    assert len(pd.read_parquet(mlflow_store / "data" / "scores" / "imgs.scores.parquet")) == 60
    gan = json.dumps({"max_steps": 10, "n_checks": 1, "base": 4, "latent": 4,
                      "check_samples": 4, "device": "cpu", "sampling_strategy": {"1": 40}})
    keep = np.r_[np.arange(30), np.arange(30, 40)]
    np.savez(mlflow_store / "rare.npz", X=X[keep], y=y[keep].astype(str))
    rc, text, _ = _run(["augment", "--data", str(mlflow_store / "rare.npz"), "--params", gan])
    res = json.loads(text[text.index("{\n"):])
    assert rc == 0 and res["n_generated"] == 30
    out = np.load(mlflow_store / "data" / "augmented" / "rare.augmented.npz")
    assert out["is_synthetic"].sum() == 30 and (out["y"][out["is_synthetic"]] == "1").all()
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(mlflow_store / "t.csv", index=False)
    rc, _, err = _run(["augment", "--data", str(mlflow_store / "t.csv")])
    assert rc == 2 and "--target" in err
