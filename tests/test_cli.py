"""The genaug command line, through real flow runs."""

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


def test_train_then_score_and_bad_file(prefect_api, mlflow_store, capsys):
    data = mlflow_store / "t.parquet"
    mixed_frame(n=300, seed=6).drop(columns="is_anomaly").to_parquet(data)
    rc = main(["train", "--data", str(data), "--name", "cli-model",
               "--params", json.dumps({"max_steps": 60, "n_members": 1})])
    assert rc == 0
    assert '"promoted": true' in capsys.readouterr().out
    target = mlflow_store / "s.parquet"
    rc = main(["score", "--data", str(data), "--model", "models:/cli-model@champion",
               "--out", str(target)])
    assert rc == 0 and len(pd.read_parquet(target)) == 300

    bad = mlflow_store / "bad.csv"
    bad.write_text("a;b;colour\n1;2;red\n")
    rc = main(["score", "--data", str(bad), "--model", "models:/cli-model@champion"])
    assert rc == 2
    assert "bad.csv" in capsys.readouterr().err
