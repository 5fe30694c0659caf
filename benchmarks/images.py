"""Image benchmark: one-class anomaly detection and image augmentation on ``<data>/images``.

**Anomaly detection** (each class in turn as "normal"), per ``.npz`` image set and seed: a
stratified 70/30 split of all images; each method is fitted on the training images of the normal
class only and scores the whole test part (anomaly = any other class). Methods: genaug's
:class:`~genaug.image_detector.ImageAnomalyDetector` on the images, and PyOD's AutoEncoder and
IForest on flattened pixels scaled to [0, 1]. ROC-AUC per class and the mean over classes; fit
times are CPU seconds of this process (``time.process_time``, all threads).

**Augmentation** (skipped with ``--no-augment``), per image set: one class (``--rare-class``,
default in ``RARE``) is cut to ``--rare-share`` of the images (seeded);
:func:`genaug.image_evaluation.evaluate_image_augmentation` compares the arms none / random
oversampling / the image GAN with LogisticRegression, HistGradientBoosting and RandomForest on
pixels over ``--splits`` seeded splits (PR-AUC of the rare class on real test images, CIs and
verdicts). For every split, the GAN fitted there draws ``--share-samples`` images per class and
a logistic regression trained on that split's real training images says which class each one is:
the share assigned to the requested class.

    python benchmarks/images.py                          # both sets, anomaly + augmentation
    python benchmarks/images.py --datasets digits --no-augment

Needs PyOD (the ``bench`` extra). Data: ``--data`` or ``$GENAUG_DATA``, default
``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

PEERS = ["pyod_ae", "iforest"]
# default rare class per set: the class a logistic regression on pixels confuses most (digits:
# 8, Fashion-MNIST: 6 = Shirt), so that augmentation has room to help
RARE = {"digits_8x8": 8, "fashion_mnist_1k": 6}


def load_sets(data: Path, only: list[str] | None) -> list[Path]:
    files = sorted((data / "images").glob("*.npz"))
    if only:
        files = [f for f in files if any(o.lower() in f.stem.lower() for o in only)]
    if not files:
        raise SystemExit(f"no image .npz files under {data / 'images'}")
    return files


def make_method(name: str, seed: int, params: dict):
    """A fresh detector and a function images -> scores (higher = more anomalous)."""
    if name == "genaug":
        from genaug.image_detector import ImageAnomalyDetector

        det = ImageAnomalyDetector(random_state=seed, **params)
        return det, lambda X: det.fit(X), det.decision_function
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.iforest import IForest

    det = {"pyod_ae": lambda: AutoEncoder(random_state=seed, verbose=0),
           "iforest": lambda: IForest(random_state=seed)}[name]()

    def flat(X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1).astype(np.float64) / 255.0

    return det, lambda X: det.fit(flat(X)), lambda X: det.decision_function(flat(X))


def anomaly(args: argparse.Namespace, files: list[Path]) -> pd.DataFrame:
    params = json.loads(args.genaug_params)
    rows = []
    for f in files:
        z = np.load(f, allow_pickle=False)
        X, y = z["X"], z["y"].astype(int)
        for seed in range(args.seeds):
            tr, te = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y,
                                      random_state=seed)
            for c in np.unique(y):
                normal = tr[y[tr] == c]
                target = (y[te] != c).astype(int)
                for m in args.methods:
                    det, fit, score = make_method(m, seed, params)
                    t0 = time.process_time()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fit(X[normal])
                    secs = time.process_time() - t0
                    s = np.asarray(score(X[te]), dtype=float)
                    rows.append({"dataset": f.stem, "seed": seed, "normal_class": int(c),
                                 "method": m, "roc_auc": roc_auc_score(target, s),
                                 "fit_cpu_s": secs, "n_train": len(normal)})
                    print(f"{f.stem:18s} seed={seed} normal={c} {m:8s} "
                          f"roc={rows[-1]['roc_auc']:.3f} fit={secs:.1f}s", flush=True)
    return pd.DataFrame(rows)


def anomaly_report(res: pd.DataFrame) -> str:
    lines = []
    methods = [m for m in ["genaug", *PEERS] if m in res.method.unique()]
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        for ds, g in res.groupby("dataset", sort=False):
            t = g.groupby(["normal_class", "method"])["roc_auc"].mean().unstack("method")
            t = t[methods]
            t.loc["MEAN"] = t.mean()
            fit = g.groupby("method")["fit_cpu_s"].median()
            t.loc["median fit CPU-s"] = [fit[m] for m in methods]
            lines.append(f"\n{ds}: ROC-AUC, one class as normal (mean over seeds)\n{t.to_string()}")
    if "genaug" in methods:
        means = res.groupby(["dataset", "method"])["roc_auc"].mean().unstack("method")
        ok = all((means["genaug"] > means[p]).all() for p in PEERS if p in means)
        lines.append(f"\n[{'MET' if ok else 'MISSED'}] genaug's mean ROC-AUC ahead of "
                     f"{' and '.join(p for p in PEERS if p in means)} on every image set")
    return "\n".join(lines)


def cut_class(X: np.ndarray, y: np.ndarray, rare: int, share: float, seed: int):
    """Keep a random ``share`` of all images for class ``rare`` (the others untouched)."""
    rng = np.random.default_rng(seed)
    others = np.flatnonzero(y != rare)
    n_rare = int(round(share / (1 - share) * len(others)))
    keep = np.sort(np.r_[others, rng.choice(np.flatnonzero(y == rare), n_rare, replace=False)])
    return X[keep], y[keep]


def recording_arm(factory, made: list, fit_cpu: list):
    """The factory, keeping every sampler it makes (to check the GANs after the run) and the
    CPU seconds of each ``fit_resample`` (GAN fit plus drawing the extra images)."""

    def make(seed: int):
        s = factory(seed)
        made.append(s.augmenter)
        inner = s.fit_resample

        def timed(X, y):
            t0 = time.process_time()
            out = inner(X, y)
            fit_cpu.append(time.process_time() - t0)
            return out

        s.fit_resample = timed
        return s

    return make


def augmentation(args: argparse.Namespace, files: list[Path]) -> list[str]:
    from genaug import image_evaluation as ie

    gan_params = json.loads(args.gan_params)
    out = []
    for f in files:
        z = np.load(f, allow_pickle=False)
        rare = args.rare_class if args.rare_class is not None else RARE.get(f.stem, 0)
        X, y = cut_class(z["X"], z["y"].astype(int), rare, args.rare_share, 0)
        df, shape = ie.pixel_table(X)
        const = {c: float(df[c].iloc[0]) for c in df.columns if df[c].nunique() == 1}
        made: list = []
        fit_cpu: list = []
        arm = recording_arm(ie.gan_arm(shape, list(df.columns), const, **gan_params), made,
                            fit_cpu)
        t0 = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ie.evaluate_image_augmentation(
                X, y, {"none": "none", "random": "random",
                       "gan": arm},
                classifiers=tuple(args.classifiers), n_splits=args.splits,
                positive=rare, random_state=0)
        secs = time.time() - t0
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.records.to_csv(Path(args.out).with_name(f"images_augmentation_{f.stem}.csv"),
                           index=False)
        shares, ceiling = [], []
        for sp, aug in zip(res.splits, made):
            flat = df.to_numpy()
            clf = LogisticRegression(max_iter=1000).fit(flat[sp.train], y[sp.train])
            per = {}
            for c in aug.classes_:
                xs, _ = aug.sample(args.share_samples, label=c)
                per[int(c)] = float(np.mean(clf.predict(np.asarray(xs)) == c))
            shares.append(per)
            # reference: the same checker on the split's real test images (per-class accuracy)
            pred = clf.predict(flat[sp.test])
            ceiling.append({int(c): float(np.mean(pred[y[sp.test] == c] == c))
                            for c in aug.classes_})
        sh, ceil = pd.DataFrame(shares), pd.DataFrame(ceiling)
        counts = np.bincount(y)
        lines = [f"\n## {f.stem}: augmentation, class {rare} cut to "
                 f"{counts[rare]} of {len(y)} images ({100 * args.rare_share:.0f} %); "
                 f"{args.splits} splits; {secs:.0f} s wall", "", res.to_markdown(),
                 "GAN samples assigned to the requested class by a logistic regression trained "
                 f"on real training images ({args.share_samples} per class, mean over splits):",
                 "", " ".join(f"{c}:{v:.2f}" for c, v in sh.mean().items()),
                 f"mean over classes {sh.mean().mean():.3f}; rare class "
                 f"{sh[rare].mean():.3f}; held-out check chose "
                 + ", ".join(f"step {a.selected_['step']} (share {a.selected_['class_share']:.2f},"
                             f" C2ST {a.selected_['c2st_auc']:.2f})" for a in made),
                 "reference, the same logistic regression's accuracy per class on the split's "
                 "real test images: " + " ".join(f"{c}:{v:.2f}" for c, v in ceil.mean().items())
                 + f" (mean {ceil.mean().mean():.3f}; rare class {ceil[rare].mean():.3f})",
                 "GAN fit_resample CPU seconds per split: "
                 + ", ".join(f"{t:.0f}" for t in fit_cpu)]
        v = res.verdicts()
        rand = v[v.arm == "random"].set_index("classifier")["diff"]
        gan_d = v[v.arm == "gan"].set_index("classifier")["diff"]
        vs = res.verdicts(baseline="random")
        vs = vs[vs.arm == "gan"].set_index("classifier")
        ok_share = sh.mean().mean() >= 0.9
        ok_pr = bool((vs["verdict"] != "hurts").all())
        lines += ["", "GAN vs random oversampling, PR-AUC (paired over splits):", ""]
        lines += [f"  {k}: gan - random {r['diff']:+.3f} [{r['diff_low']:+.3f}, "
                  f"{r['diff_high']:+.3f}] -> {r['verdict']}" for k, r in vs.iterrows()]
        lines += ["", f"[{'MET' if ok_share else 'MISSED'}] GAN samples assigned to the "
                  f"requested class >= 90 % ({sh.mean().mean():.3f})",
                  f"[{'MET' if ok_pr else 'MISSED'}] GAN not worse than random oversampling in "
                  "PR-AUC (no classifier where the paired CI of gan - random is below 0; "
                  "point estimates vs 'none': "
                  + ", ".join(f"{k}: gan {gan_d[k]:+.3f} vs random {rand[k]:+.3f}"
                              for k in gan_d.index) + ")"]
        text = "\n".join(lines)
        print(text, flush=True)
        out.append(text)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("GENAUG_DATA", "../shared/data"))
    p.add_argument("--datasets", nargs="*", help="substrings of image set names to keep")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--methods", nargs="*", default=["genaug", *PEERS])
    p.add_argument("--genaug-params", default="{}", help="JSON of ImageAnomalyDetector params")
    p.add_argument("--no-anomaly", action="store_true")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--rare-class", type=int, default=None,
                   help="class cut to --rare-share (default: the one in RARE for the set)")
    p.add_argument("--rare-share", type=float, default=0.05)
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--gan-params", default="{}", help="JSON of ImageAugmenter params")
    p.add_argument("--classifiers", nargs="*", default=["logreg", "hgb", "rf"])
    p.add_argument("--share-samples", type=int, default=200)
    p.add_argument("--out", default="benchmarks/results/images_anomaly.csv")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    files = load_sets(Path(args.data), args.datasets)
    if not args.no_anomaly:
        res = anomaly(args, files)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(args.out, index=False)
        print(anomaly_report(res), flush=True)
    if not args.no_augment:
        augmentation(args, files)


if __name__ == "__main__":
    main()
