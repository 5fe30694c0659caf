"""ADBench protocol: genaug's AnomalyDetector against PyOD's VAE, AutoEncoder, IForest and ECOD.

For every ``.npz`` in ``<data>/adbench`` and every seed: subsample to at most ``--max-rows``
rows (stratified), split 70/30 (stratified), fit each method unsupervised on the training part,
and score the test part (ROC-AUC, PR-AUC = average precision). Fit and score times are CPU
seconds of this process (``time.process_time``, all threads). Writes one CSV row per
(dataset, seed, method) and prints per-dataset means, overall means, a paired 95 % CI of
genaug minus each peer, and the issue's targets.

    python benchmarks/anomaly.py                       # everything (about 25 min on 2 cores)
    python benchmarks/anomaly.py --methods genaug --reuse benchmarks/results/anomaly.csv
    python benchmarks/anomaly.py --genaug-params '{"combine": "none"}' --tag vae-only

Needs the ``bench`` extra (``pip install -e '.[bench]'``) for PyOD. Data path: ``--data`` or
``$GENAUG_DATA``, default ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

PEERS = ["pyod_vae", "pyod_ae", "iforest", "ecod"]


def make_method(name: str, seed: int, genaug_params: dict):
    """A fresh detector; each exposes fit(X) and a scorer where higher = more anomalous."""
    if name == "genaug":
        import genaug

        det = genaug.AnomalyDetector(random_state=seed, **genaug_params)
        return det, det.decision_function
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.vae import VAE

    det = {
        "pyod_vae": lambda: VAE(random_state=seed, verbose=0),
        "pyod_ae": lambda: AutoEncoder(random_state=seed, verbose=0),
        "iforest": lambda: IForest(random_state=seed),
        "ecod": lambda: ECOD(),
    }[name]()
    return det, det.decision_function


def load_sets(data: Path, only: list[str] | None) -> list[Path]:
    files = sorted((data / "adbench").glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    if only:
        files = [f for f in files if any(o.lower() in f.stem.lower() for o in only)]
    if not files:
        sys.exit(f"no ADBench .npz files under {data / 'adbench'}")
    return files


def split(X: np.ndarray, y: np.ndarray, seed: int, max_rows: int):
    if len(X) > max_rows:
        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=y, random_state=seed)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)


def run(args: argparse.Namespace) -> pd.DataFrame:
    data = Path(args.data)
    methods = args.methods
    genaug_params = json.loads(args.genaug_params)
    done = pd.DataFrame()
    if args.reuse and Path(args.reuse).exists():
        done = pd.read_csv(args.reuse)
    rows = []
    for f in load_sets(data, args.datasets):
        d = np.load(f)
        X, y = d["X"].astype(np.float64), d["y"].astype(int)
        for seed in range(args.seeds):
            Xtr, Xte, _, yte = split(X, y, seed, args.max_rows)
            for m in methods:
                name = m if m != "genaug" else f"genaug{args.tag}"
                prev = done[(done.dataset == f.stem) & (done.seed == seed)
                            & (done.method == name)] if len(done) else done
                if len(prev) and m != "genaug":
                    rows.append(prev.iloc[0].to_dict())
                    continue
                det, scorer = make_method(m, seed, genaug_params)
                t0 = time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    det.fit(Xtr)
                t1 = time.process_time()
                s = np.asarray(scorer(Xte), dtype=float)
                t2 = time.process_time()
                rows.append({
                    "dataset": f.stem, "seed": seed, "method": name,
                    "roc_auc": roc_auc_score(yte, s), "pr_auc": average_precision_score(yte, s),
                    "fit_cpu_s": t1 - t0, "score_cpu_s": t2 - t1,
                    "n_train": len(Xtr), "d": X.shape[1],
                })
                print(f"{f.stem:16s} seed={seed} {name:14s} roc={rows[-1]['roc_auc']:.3f} "
                      f"pr={rows[-1]['pr_auc']:.3f} fit={t1 - t0:.2f}s "
                      f"score={t2 - t1:.3f}s", flush=True)
                if args.partial:  # keep what is done if the run is stopped early
                    pd.DataFrame(rows).to_csv(args.partial, index=False)
    res = pd.DataFrame(rows)
    if done is not None and len(done):
        keep = done[~done.set_index(["dataset", "seed", "method"]).index.isin(
            res.set_index(["dataset", "seed", "method"]).index)]
        res = pd.concat([keep, res], ignore_index=True)
    return res


def paired_ci(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    diff = (a - b).dropna()
    m = float(diff.mean())
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
    return m, m - half, m + half


def report(res: pd.DataFrame, ours: str) -> str:
    per = res.groupby(["dataset", "method"])[["roc_auc", "pr_auc"]].mean().unstack("method")
    methods = [ours] + [m for m in PEERS if m in res.method.unique()]
    lines = []
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.3f}".format):
        for metric in ("roc_auc", "pr_auc"):
            t = per[metric][methods].copy()
            order = res.drop_duplicates("dataset").set_index("dataset")
            t = t.loc[[d for d in order.index if d in t.index]]
            t.loc["MEAN"] = t.mean()
            lines.append(f"\n{metric} (mean over seeds)\n{t.to_string()}")
        fit = res.groupby("method")["fit_cpu_s"].median()
        sc = res.groupby("method")["score_cpu_s"].median()
        lines.append("\nmedian fit CPU-s: " + ", ".join(f"{m}={fit[m]:.2f}" for m in methods))
        lines.append("median score CPU-s: " + ", ".join(f"{m}={sc[m]:.3f}" for m in methods))
    roc, pr = per["roc_auc"], per["pr_auc"]
    for peer in [m for m in PEERS if m in roc.columns]:
        m, lo, hi = paired_ci(roc[ours], roc[peer])
        mp, lop, hip = paired_ci(pr[ours], pr[peer])
        lines.append(f"{ours} - {peer}: ROC {m:+.3f} [{lo:+.3f}, {hi:+.3f}]  "
                     f"PR {mp:+.3f} [{lop:+.3f}, {hip:+.3f}]  (paired 95% CI over datasets)")
    if {"iforest", "pyod_vae"} <= set(roc.columns):
        gap = roc[ours] - roc["iforest"]
        wins = int((roc[ours] > roc["pyod_vae"]).sum())
        checks = [
            ("mean ROC >= IForest + 0.015", roc[ours].mean() >= roc["iforest"].mean() + 0.015),
            ("mean PR >= IForest", pr[ours].mean() >= pr["iforest"].mean()),
            (f"ahead of PyOD VAE on >= 2/3 of sets ({wins}/{len(roc)})", wins >= 2 * len(roc) / 3),
            (f"no set > 0.05 below IForest (worst {gap.min():+.3f} on {gap.idxmin()})",
             gap.min() >= -0.05),
            ("median fit CPU-s <= PyOD VAE", fit[ours] <= fit["pyod_vae"]),
        ]
        lines.append("\nTargets:")
        lines += [f"  [{'MET' if ok else 'MISSED'}] {name}" for name, ok in checks]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("GENAUG_DATA", "../shared/data"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--max-rows", type=int, default=10_000)
    p.add_argument("--datasets", nargs="*", help="substrings of dataset names to keep")
    p.add_argument("--methods", nargs="*", default=["genaug", *PEERS])
    p.add_argument("--genaug-params", default="{}", help="JSON of AnomalyDetector params")
    p.add_argument("--tag", default="", help="suffix for genaug's method name in the CSV")
    p.add_argument("--reuse", help="CSV of an earlier run: reuse its peer rows")
    p.add_argument("--out", default="benchmarks/results/anomaly.csv")
    p.add_argument("--partial", help="CSV rewritten after every row (for long runs)")
    p.add_argument("--report", nargs="*", help="only print the report of these CSVs, merged")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    if args.report:
        res = pd.concat([pd.read_csv(f) for f in args.report], ignore_index=True)
        print(report(res[res.method.isin([f"genaug{args.tag}", *PEERS])], f"genaug{args.tag}"))
        return
    res = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(args.out, index=False)
    print(report(res[res.method.isin([f"genaug{args.tag}", *PEERS])], f"genaug{args.tag}"))
    print(f"\nrows written to {args.out}")


if __name__ == "__main__":
    main()
