"""Augmentation benchmark: genaug's Augmenter (model="vae" and "gan") against SMOTE/SMOTENC.

For each data set and seed: a 5,000-row stratified subsample (all rows when smaller), a 70/30
stratified train/holdout split, each method fitted on the training part, and synthetic rows of
the rare class (as many as the holdout has, at least 500) compared with the holdout's real rare
rows:

* ``fit_s``: CPU seconds of this process for the fit (``time.process_time``; the wall time is
  ``fit_wall_s``); ``rows_per_s``: rows per CPU second of ``sample(20_000, label=rare)``
  (best of 3 calls);
* ``c2st``: ROC-AUC of a small gradient-boosting classifier telling synthetic rare rows from
  real holdout rare rows (5-fold out-of-fold scores on the encoded rows; 0.5 is ideal);
* ``label_fid``: share of synthetic rare rows that a classifier trained on the real training
  rows calls rare, minus that share for the real holdout rare rows (``label_real`` is the
  latter; 0 is ideal);
* ``dcr_ratio``: median distance from a synthetic rare row to its nearest training row over the
  same median for real holdout rare rows (encoded rows; 1 is ideal, lower means closer to
  copying); ``copies``: share of synthetic rows identical to a training row in every column
  (``copies_real``: the same share for real holdout rare rows).

Data: the mixed tables of ``<data>/tabular`` (``schema.json`` names target and positive class;
bank_marketing without ``duration``) and ADBench sets in ``<data>/adbench`` (``y == 1`` is the
rare class). ``--data`` or ``$GENAUG_DATA``, default ``../shared/data``.

    python benchmarks/augmentation.py                                  # everything
    python benchmarks/augmentation.py --datasets adult,cardio --seeds 0 --methods vae
    python benchmarks/augmentation.py --params '{"sample_z": "posterior"}' --tag posterior

With ``--evaluate`` every data set also goes through :func:`genaug.evaluate_augmentation` on a
5,000-row stratified subsample (``--splits`` seeded train/validation/test splits, 50/25/25;
arms ``--arms``: none, random, smote, vae, gan and the default model with ``drop_anomalies``
or ``reject_anomalies``; classifiers ``--classifiers``, the forest with ``--rf-trees`` trees;
``--ratio`` grows the rare class to that share of the majority, default full balance). It
prints, per set and arm, the PR-AUC change against "none" per classifier and averaged over
them (95 % t-interval over the paired splits) beside the arm's fidelity figures, then means
over the mixed tables and over the ADBench sets. Records go to ``<out>-eval.csv``.

    python benchmarks/augmentation.py --evaluate --seeds 0 --rf-trees 50 --tag full

Arms are functions in ``METHODS`` (fit on the training rows, return synthetic rare rows) and
metrics functions in ``METRICS`` (compare them with the holdout): add entries to extend it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genaug import Augmenter, evaluate_augmentation  # noqa: E402
from genaug.evaluation import _work_schema, make_classifier, t_interval  # noqa: E402
from genaug.neighbours import min_sq_distances, rank_auc  # noqa: E402
from genaug.schema import NUMERIC, infer_schema  # noqa: E402
from genaug.transform import TabularEncoder  # noqa: E402

TABULAR = ["adult", "bank_marketing", "hmda"]
ADBENCH = ["2_annthyroid", "4_breastw", "6_cardio", "23_mammography", "27_PageBlocks",
           "29_Pima", "30_satellite", "35_SpamBase", "38_thyroid", "47_yeast"]
MAX_ROWS = 5000
# sets that earlier sessions tuned the Augmenter on (seed 0 and 1): their numbers are not
# held-out evidence
DEV = ["adult", "hmda", "2_annthyroid", "6_cardio", "23_mammography", "29_Pima",
       "30_satellite", "47_yeast"]
N_RATE = 20_000  # rows sampled to measure the sampling rate
DEFAULT_MODEL = Augmenter().model

TARGETS = {  # metric: (test, text)
    "fit_s": (lambda v: v <= 5.0, "<= 5 s"),
    "rows_per_s": (lambda v: v >= 300_000, ">= 300k rows/s"),
    "c2st": (lambda v: v <= 0.70, "<= 0.70 per set"),
    "label_fid": (lambda v: abs(v) <= 0.05, "within +-0.05"),
    "dcr_ratio": (lambda v: v >= 0.95, ">= 0.95"),
    "copies": (lambda v: v < 0.001, "< 0.1 %"),
}


# ----------------------------------------------------------------------------------- data
@dataclass
class Task:
    """One data set split for one seed."""

    name: str
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_hold: pd.DataFrame
    y_hold: np.ndarray
    rare: Any
    mixed: bool
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def n_synth(self) -> int:
        return int(max((self.y_hold == self.rare).sum(), 500))


def load(data: Path, name: str) -> tuple[pd.DataFrame, np.ndarray, Any, bool]:
    """Features, labels, rare label and whether the table is mixed-type."""
    if name in TABULAR:
        spec = json.loads((data / "tabular" / "schema.json").read_text())[name]
        df = pd.read_parquet(data / spec["file"])
        if name == "bank_marketing":
            df = df.drop(columns="duration")
        y = df.pop(spec["target"]).astype(str).to_numpy()
        return df, y, spec["positive"], True
    z = np.load(data / "adbench" / f"{name}.npz")
    X = pd.DataFrame(z["X"].astype(float), columns=[f"x{i}" for i in range(z["X"].shape[1])])
    return X, z["y"].astype(int), 1, False


def make_task(data: Path, name: str, seed: int) -> Task:
    X, y, rare, mixed = load(data, name)
    if len(X) > MAX_ROWS:  # stratified subsample, shuffled (bank_marketing is in time order)
        X, _, y, _ = train_test_split(X, y, train_size=MAX_ROWS, stratify=y, random_state=seed)
    Xtr, Xho, ytr, yho = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    return Task(name, Xtr.reset_index(drop=True), ytr, Xho.reset_index(drop=True), yho, rare,
                mixed)


# ----------------------------------------------------------------------------------- arms
def _augmenter(model: str, **options: Any) -> Callable[[Task, int, dict], dict]:
    def run(task: Task, seed: int, params: dict) -> dict:
        aug = Augmenter(model=model, random_state=seed, **{**options, **params})
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        aug.fit(task.X_train, task.y_train)
        fit_s, fit_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
        synth, labels = aug.sample(task.n_synth, label=task.rare)
        assert (labels == task.rare).all()
        aug.sample(2000, label=task.rare)  # warm-up
        best = np.inf
        for _ in range(3):  # the best of 3: other jobs on a shared machine only slow it down
            t_cpu = time.process_time()
            aug.sample(N_RATE, label=task.rare)
            best = min(best, time.process_time() - t_cpu)
        rate = N_RATE / max(best, 1e-9)
        best_c2st = min((h["val_c2st"] for h in aug.history_ if "val_c2st" in h),
                        default=np.nan)
        return {"synth": synth, "fit_s": fit_s, "fit_wall_s": fit_wall, "rows_per_s": rate,
                "val_c2st": best_c2st, "guard_rejects": aug.last_rejected_["copy"] / N_RATE,
                **{f"t_{k}": v for k, v in aug.timings_.items()}}

    return run


def _smote(task: Task, seed: int, params: dict) -> dict:
    from imblearn.over_sampling import SMOTE, SMOTENC

    X = task.X_train.copy()
    cat = [i for i, c in enumerate(X.columns)
           if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    for i in cat:
        X.iloc[:, i] = X.iloc[:, i].astype(object)
    n_rare = int((task.y_train == task.rare).sum())
    strategy = {task.rare: n_rare + task.n_synth}
    k = int(min(5, n_rare - 1))
    smote = (SMOTENC(categorical_features=cat, sampling_strategy=strategy, k_neighbors=k,
                     random_state=seed) if cat else
             SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed))
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    X_res, _ = smote.fit_resample(X, task.y_train)
    fit_s, fit_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
    synth = pd.DataFrame(X_res).iloc[len(X):].reset_index(drop=True)
    synth.columns = task.X_train.columns
    for c in task.X_train.columns:
        synth[c] = synth[c].astype(task.X_train[c].dtype)
    return {"synth": synth, "fit_s": fit_s, "fit_wall_s": fit_wall,
            "rows_per_s": task.n_synth / max(fit_s, 1e-9)}


def _random(task: Task, seed: int, params: dict) -> dict:
    """Random oversampling: synthetic rows are training rows of the rare class again."""
    rare = task.X_train[task.y_train == task.rare]
    pick = np.random.default_rng(seed).integers(0, len(rare), task.n_synth)
    return {"synth": rare.iloc[pick].reset_index(drop=True)}


METHODS: dict[str, Callable[[Task, int, dict], dict]] = {
    "vae": _augmenter("vae"),
    "gan": _augmenter("gan"),
    "smote": _smote,
    "random": _random,
    "default+drop": _augmenter(DEFAULT_MODEL, drop_anomalies=True),
    "default+reject": _augmenter(DEFAULT_MODEL, reject_anomalies=True),
}


# ----------------------------------------------------------------------------------- metrics
def _encoder(task: Task) -> TabularEncoder:
    """One encoding for every method's rows: standardised numerics, one-hot categories."""
    if "encoder" not in task.cache:
        schema = infer_schema(task.X_train, all_numeric=not task.mixed, id_min_rows=2**62,
                              constant="drop")
        enc = TabularEncoder(numeric="standard", max_levels=100).fit(
            schema.validate(task.X_train), schema)
        task.cache["encoder"] = enc
        task.cache["schema"] = schema
    return task.cache["encoder"]


def encode(task: Task, X: pd.DataFrame) -> np.ndarray:
    enc = _encoder(task)
    return enc.transform(task.cache["schema"].validate(X, handle_unknown="keep")).X


def _hgb(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=100, max_depth=3, learning_rate=0.1,
                                          early_stopping=False, random_state=seed)


def c2st_auc(real: np.ndarray, synth: np.ndarray, seed: int, folds: int = 5) -> float:
    """Out-of-fold ROC-AUC of a small HGB telling synthetic from real rows (0.5 = ideal)."""
    X = np.vstack([real, synth])
    y = np.r_[np.zeros(len(real)), np.ones(len(synth))]
    score = np.zeros(len(y))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for tr, te in cv.split(X, y):
        score[te] = _hgb(seed).fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    return rank_auc(y, score)


def m_c2st(task: Task, synth: pd.DataFrame, seed: int) -> dict:
    real = encode(task, task.X_hold[task.y_hold == task.rare])
    return {"c2st": c2st_auc(real, encode(task, synth), seed)}


def m_label(task: Task, synth: pd.DataFrame, seed: int) -> dict:
    if "clf" not in task.cache:
        task.cache["clf"] = _hgb(seed).fit(encode(task, task.X_train),
                                           task.y_train == task.rare)
    clf = task.cache["clf"]
    real = float(clf.predict(encode(task, task.X_hold[task.y_hold == task.rare])).mean())
    syn = float(clf.predict(encode(task, synth)).mean())
    return {"label_fid": syn - real, "label_real": real}


def _row_hashes(X: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(X.astype(str), index=False).to_numpy()


def m_dcr(task: Task, synth: pd.DataFrame, seed: int) -> dict:
    train = encode(task, task.X_train)
    real = np.sqrt(min_sq_distances(encode(task, task.X_hold[task.y_hold == task.rare]),
                                    train))
    syn = np.sqrt(min_sq_distances(encode(task, synth), train))
    train_h = set(_row_hashes(task.X_train))
    hold_rare = task.X_hold[task.y_hold == task.rare]
    return {
        "dcr_ratio": float(np.median(syn) / max(np.median(real), 1e-12)),
        "copies": float(np.isin(_row_hashes(synth), list(train_h)).mean()),
        "copies_real": float(np.isin(_row_hashes(hold_rare), list(train_h)).mean()),
    }


METRICS: list[Callable[[Task, pd.DataFrame, int], dict]] = [m_c2st, m_label, m_dcr]


# ----------------------------------------------------------------------------------- report
def fidelity_rows(data: Path, name: str, args: argparse.Namespace, params: dict) -> list[dict]:
    """The fidelity metrics of every method on one data set, for each seed."""
    rows = []
    for seed in args.seeds:
        task = make_task(data, name, seed)
        for method in args.methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = METHODS[method](task, seed,
                                      {} if method in ("smote", "random") else params)
                synth = res.pop("synth")
                for metric in METRICS:
                    res.update(metric(task, synth, seed))
            rows.append({"dataset": name, "seed": seed, "method": method, "tag": args.tag,
                         **res})
            print(f"{name:16s} seed={seed} {method:14s} " + " ".join(
                f"{k}={v:.3g}" for k, v in res.items() if isinstance(v, float)), flush=True)
    return rows


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Fidelity rows for every data set (and, with ``--evaluate``, classifier records)."""
    data = Path(args.data)
    params = json.loads(args.params)
    rows: list[dict] = []
    records: list[pd.DataFrame] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        try:
            rows += fidelity_rows(data, name, args, params)
        except Exception:  # one broken set must not cost the others' results
            traceback.print_exc()
            continue
        pd.DataFrame(rows).to_csv(out, index=False)  # partial results survive a crash
        if args.evaluate:
            t0 = time.perf_counter()
            try:
                rec = evaluate_set(data, name, args, params)
            except Exception:
                traceback.print_exc()
                continue
            records.append(rec)
            pd.concat(records).to_csv(_eval_path(out), index=False)
            print(f"{name}: classifier evaluation in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            print(eval_report(rec, pd.DataFrame(rows), args.arms), flush=True)
    return pd.DataFrame(rows), pd.concat(records) if records else None


# --------------------------------------------------------------------- classifier evaluation
ARMS = ["none", "random", "smote", "vae", "gan", "default+drop", "default+reject"]
SYNTHETIC = {"vae": {"model": "vae"}, "gan": {"model": "gan"},
             "default+drop": {"drop_anomalies": True},
             "default+reject": {"reject_anomalies": True}}


def _eval_path(out: Path) -> Path:
    return out.with_name(out.stem + "-eval.csv")


def _arm(name: str, params: dict) -> Any:
    if name in SYNTHETIC:
        opts = {**params, **SYNTHETIC[name]}
        return lambda seed: Augmenter(random_state=seed, **opts)
    return name  # a built-in arm of evaluate_augmentation


def evaluate_set(data: Path, name: str, args: argparse.Namespace, params: dict) -> pd.DataFrame:
    """evaluate_augmentation on a 5,000-row stratified subsample of one data set: per-split
    records of every arm x classifier (test rows are real only)."""
    X, y, rare, mixed = load(data, name)
    if len(X) > MAX_ROWS:
        X, _, y, _ = train_test_split(X, y, train_size=MAX_ROWS, stratify=y, random_state=0)
        X = X.reset_index(drop=True)
    arms = {a: _arm(a, params) for a in args.arms}
    classifiers: dict[str, Any] = {}
    schema = _work_schema(infer_schema(X, all_numeric=not mixed))
    numeric = [c.name for c in schema.columns if c.kind == NUMERIC]
    categorical = [c.name for c in schema.columns if c.kind != NUMERIC]
    for c in args.classifiers:
        if c == "rf":
            classifiers[c] = (lambda seed: make_classifier("rf", seed, numeric, categorical)
                              .set_params(clf__n_estimators=args.rf_trees))
        else:
            classifiers[c] = c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_augmentation(X if mixed else X.to_numpy(), y, arms,
                                    classifiers=classifiers, n_splits=args.splits,
                                    positive=rare, random_state=0,
                                    ratios=None if args.ratio is None else [args.ratio],
                                    n_jobs=1)
    rec = res.records.copy()
    rec.insert(0, "dataset", name)
    return rec


def _delta_ci(rec: pd.DataFrame, arm: str, clf: str | None) -> tuple[float, float, float]:
    """Mean PR-AUC change vs "none" over splits (over classifiers when ``clf`` is None), with
    a 95 % t-interval over splits (paired)."""
    r = rec if clf is None else rec[rec["classifier"] == clf]
    wide = r.pivot_table(index="split", columns="arm", values="pr_auc", aggfunc="mean")
    return t_interval((wide[arm] - wide["none"]).to_numpy())


def eval_report(rec: pd.DataFrame, fid: pd.DataFrame, arms: list[str]) -> str:
    """Per data set and arm: PR-AUC change vs none per classifier and averaged (95 % CI over
    splits), with the arm's fidelity figures (rare class, seed-averaged; ``fit_s`` in CPU
    seconds of this process, ``rows_per_s`` per CPU second)."""
    fid_set = fid.groupby(["dataset", "method"], sort=False).mean(numeric_only=True)
    clfs = list(dict.fromkeys(rec["classifier"]))
    rows = []
    for name, r in rec.groupby("dataset", sort=False):
        base = r[r["arm"] == "none"].groupby("classifier")["pr_auc"].mean()
        for arm in arms:
            row: dict[str, Any] = {"dataset": name, "arm": arm}
            for c in clfs:
                if arm == "none":
                    row[c] = f"{base[c]:.3f}"
                    continue
                m, lo, hi = _delta_ci(r, arm, c)
                row[c] = f"{m:+.3f} [{lo:+.3f},{hi:+.3f}]"
            if arm != "none":
                m, lo, hi = _delta_ci(r, arm, None)
                row["mean"] = f"{m:+.3f} [{lo:+.3f},{hi:+.3f}]"
            else:
                row["mean"] = f"{base.mean():.3f}"
            f = fid_set.loc[(name, arm)] if (name, arm) in fid_set.index else None
            for k, fmt in (("c2st", "{:.3f}"), ("label_fid", "{:+.3f}"),
                           ("dcr_ratio", "{:.2f}"), ("copies", "{:.3f}"),
                           ("fit_s", "{:.1f}"), ("rows_per_s", "{:.3g}")):
                v = None if f is None else f.get(k)
                row[k] = "" if v is None or pd.isna(v) else fmt.format(v)
            rows.append(row)
    with pd.option_context("display.width", 250, "display.max_rows", 1000,
                           "display.max_columns", 50):
        return pd.DataFrame(rows).to_string(index=False)


def eval_summary(rec: pd.DataFrame, fid: pd.DataFrame, arms: list[str]) -> str:
    """Mean PR-AUC change vs none over data sets (mixed tables, ADBench), per arm and
    classifier, with how many sets it helps / hurts (95 % CI over splits per set), and the
    mean fidelity figures (label fidelity as the mean absolute gap)."""
    lines = ["PR-AUC change vs none, mean over data sets (sets where the mean over classifiers "
             "helps/hurts: CI above/below 0):"]
    fid_set = fid.groupby(["dataset", "method"], sort=False).mean(numeric_only=True)
    adb = rec[~rec["dataset"].isin(TABULAR)]
    for group, r in (("mixed tables (adult, hmda: dev sets)", rec[rec["dataset"].isin(TABULAR)]),
                     ("ADBench, all", adb),
                     ("ADBench, held out (not used in tuning)", adb[~adb["dataset"].isin(DEV)]),
                     ("ADBench, dev sets (used in tuning)", adb[adb["dataset"].isin(DEV)])):
        if r.empty:
            continue
        sets = list(dict.fromkeys(r["dataset"]))
        rows = []
        for arm in arms:
            if arm == "none":
                continue
            row: dict[str, Any] = {"arm": arm}
            per_set = {c: [] for c in [*dict.fromkeys(r["classifier"]), None]}
            helps = hurts = 0
            for name in sets:
                rs = r[r["dataset"] == name]
                for c in per_set:
                    per_set[c].append(_delta_ci(rs, arm, c)[0])
                _, lo, hi = _delta_ci(rs, arm, None)
                helps += lo > 0
                hurts += hi < 0
            for c, v in per_set.items():
                row[c or "mean"] = f"{np.mean(v):+.4f}"
            row["helps/hurts"] = f"{helps}/{hurts} of {len(sets)}"
            for k in ("c2st", "label_fid", "dcr_ratio", "copies", "fit_s", "rows_per_s"):
                vals = [fid_set.loc[(n, arm), k] for n in sets
                        if (n, arm) in fid_set.index and k in fid_set.columns]
                vals = [abs(v) if k == "label_fid" else v for v in vals if not pd.isna(v)]
                row["|label_fid|" if k == "label_fid" else k] = (f"{np.mean(vals):.3g}" if vals
                                                                  else "")
            rows.append(row)
        lines.append(f"{group} ({len(sets)} sets: {', '.join(sets)}):")
        with pd.option_context("display.width", 250, "display.max_columns", 50):
            lines.append(pd.DataFrame(rows).to_string(index=False))
    return "\n".join(lines)


SHOW = ["fit_s", "fit_wall_s", "rows_per_s", "c2st", "label_fid", "label_real", "dcr_ratio",
        "copies", "copies_real"]


def report(df: pd.DataFrame) -> str:
    """Per-set means over seeds, overall means, and the targets per method."""
    cols = [c for c in SHOW if c in df.columns]
    lines = []
    per_set = df.groupby(["dataset", "method"], sort=False)[cols].mean()
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.float_format", lambda v: f"{v:.3f}"):
        lines.append("Per data set (mean over seeds):")
        lines.append(per_set.to_string())
        lines.append("")
        lines.append("Mean over data sets:")
        overall = per_set.groupby(level="method", sort=False).mean()
        lines.append(overall.to_string())
    lines.append("")
    lines.append(f"Targets (default model: {DEFAULT_MODEL!r}):")
    for method in df["method"].unique():
        sets = per_set.xs(method, level="method")
        checks = []
        for metric, (ok, text) in TARGETS.items():
            if metric not in sets:
                continue
            if method in ("smote", "random") and metric in ("fit_s", "rows_per_s"):
                continue
            vals = sets[metric]
            worst = vals.max() if metric in ("fit_s", "c2st", "copies") else (
                vals.min() if metric in ("rows_per_s", "dcr_ratio") else
                vals.abs().max())
            n_ok = int(sum(ok(v) for v in vals))
            status = "MET" if n_ok == len(vals) else "MISSED"
            checks.append(f"  {metric:11s} {text:17s} {status:6s} "
                          f"({n_ok}/{len(vals)} sets; worst {worst:.3g})")
        if "c2st" in sets:
            mean = sets["c2st"].mean()
            checks.append(f"  {'c2st mean':11s} {'<= 0.65':17s} "
                          f"{'MET' if mean <= 0.65 else 'MISSED':6s} (mean {mean:.3f})")
        lines.append(f"{method}:")
        lines += checks
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("GENAUG_DATA", "../shared/data"))
    p.add_argument("--datasets", default=",".join(TABULAR + ADBENCH),
                   help="comma-separated names (substrings match ADBench files)")
    p.add_argument("--methods", default="vae,gan,smote")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--params", default="{}", help="JSON of extra Augmenter parameters")
    p.add_argument("--tag", default="")
    p.add_argument("--out", default=None, help="CSV path (default benchmarks/results/...)")
    p.add_argument("--report", default=None, help="only print the report of this CSV")
    p.add_argument("--evaluate", action="store_true",
                   help="also run the classifier evaluation (evaluate_augmentation)")
    p.add_argument("--arms", default=",".join(ARMS), help="arms of the evaluation")
    p.add_argument("--classifiers", default="logreg,rf,hgb")
    p.add_argument("--splits", type=int, default=5)
    p.add_argument("--rf-trees", type=int, default=100)
    p.add_argument("--ratio", type=float, default=None,
                   help="grow the rare class to this share of the majority (default: balance)")
    args = p.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",")]
    args.classifiers = [c.strip() for c in args.classifiers.split(",")]
    if args.report:
        fid = pd.read_csv(args.report)
        print(report(fid))
        ev = _eval_path(Path(args.report))
        if ev.exists():
            rec = pd.read_csv(ev)
            print()
            print(eval_report(rec, fid, args.arms))
            print()
            print(eval_summary(rec, fid, args.arms))
        return
    wanted = [d.strip() for d in args.datasets.split(",") if d.strip()]
    known = TABULAR + [f.stem for f in sorted((Path(args.data) / "adbench").glob("*.npz"))]
    args.datasets = []
    for w in wanted:
        hits = [k for k in known if k == w] or [k for k in known if w.lower() in k.lower()]
        if not hits:
            sys.exit(f"unknown data set {w!r} under {args.data}")
        args.datasets.append(hits[0])
    args.methods = [m.strip() for m in args.methods.split(",")]
    for m in args.methods:
        if m not in METHODS:
            sys.exit(f"unknown method {m!r}; choose from {sorted(METHODS)}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    tag = f"-{args.tag}" if args.tag else ""
    args.out = args.out or str(Path(__file__).parent / "results" / f"augmentation{tag}.csv")
    if args.evaluate:  # every arm's fidelity too
        args.methods = list(dict.fromkeys(
            [*args.methods, *(a for a in args.arms if a in METHODS)]))
    with threadpool_limits(1):  # one thread per library: 2 cores shared with other jobs
        df, rec = run(args)
    print()
    print(report(df))
    if rec is not None:
        print()
        print(eval_report(rec, df, args.arms))
        print()
        print(eval_summary(rec, df, args.arms))
    print(f"\nresults: {args.out}" + (f", {_eval_path(Path(args.out))}" if rec is not None
                                      else ""))


if __name__ == "__main__":
    main()
