"""The ``genaug`` command line: ``train``, ``score``, ``batch``, ``augment``, ``evaluate``,
``images train|score|augment|evaluate``, ``ui``. Thin: it calls flows."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def _train(args: argparse.Namespace) -> int:
    from pipelines.train_detector import train_detector

    rec = train_detector(
        data=args.data, model_name=args.name, target=args.target, label_column=args.labels,
        random_state=args.seed, params=json.loads(args.params) if args.params else None,
        validation_data=args.validation, validation_label=args.validation_label,
        min_val_auc=args.min_val_auc, tolerance=args.tolerance,
        max_train_rows=args.max_train_rows,
    )
    print(json.dumps(rec, indent=2, default=str))
    return 0 if rec["promoted"] else 3


def _score(args: argparse.Namespace) -> int:
    from pipelines.score import score

    res = score(data=args.data, model=args.model, out=args.out, key_column=args.key)
    print(json.dumps(res, indent=2, default=str))
    return 0


def _batch(args: argparse.Namespace) -> int:
    from pipelines.batch import score_incoming_flow

    res = score_incoming_flow(
        incoming=args.incoming, model=args.model, out=args.out, processed=args.processed,
        quarantine=args.quarantine, ledger=args.ledger, min_age=args.min_age,
        dask=args.dask, dask_workers=args.dask_workers, stale_after=args.stale_after,
    )
    print(res["summary"])
    for name in res["quarantined"]:
        print(f"  quarantined: {name} -> {args.quarantine}/{name}.reason.json")
    return 1 if res["quarantined"] or res["failed"] else 0


def _strategy(text: str) -> object:
    """``auto``/``minority``/... as is, a number as a float, JSON for a dict."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _augment(args: argparse.Namespace) -> int:
    from genaug.images import is_image_source
    from pipelines.augment import augment

    images = is_image_source(args.data)
    if not images and not args.target:
        print("genaug augment: --target (the label column) is required for a table",
              file=sys.stderr)
        return 2
    suffix = ".augmented.npz" if images else ".augmented.parquet"
    out = args.out or f"data/augmented/{os.path.splitext(os.path.basename(args.data))[0]}{suffix}"
    res = augment(data=args.data, target=args.target or "", out=out, model=args.model,
                  model_name=args.name, sampling_strategy=_strategy(args.strategy),
                  random_state=args.seed, params=json.loads(args.params) if args.params else None)
    res.pop("training", None)
    print(json.dumps(res, indent=2, default=str))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from genaug.images import is_image_source
    from pipelines.evaluate_augmentation import evaluate_augmentation_flow

    if not is_image_source(args.data) and not args.target:
        print("genaug evaluate: --target (the label column) is required for a table",
              file=sys.stderr)
        return 2
    res = evaluate_augmentation_flow(
        data=args.data, target=args.target or "", arms=args.arms.split(",") if args.arms else None,
        classifiers=args.classifiers.split(",") if args.classifiers else None,
        n_splits=args.splits, random_state=args.seed,
        ratios=[float(r) for r in args.ratios.split(",")] if args.ratios else None,
        augmenter_params=json.loads(args.params) if args.params else None,
        max_rows=args.max_rows or None)
    if res.get("url"):
        print(f"MLflow run: {res['url']}")
    return 0


def _images(args: argparse.Namespace) -> int:
    import pipelines.images as flows

    size = [int(v) for v in args.size.split("x")] if getattr(args, "size", None) else None
    params = json.loads(args.params) if getattr(args, "params", None) else None
    if args.action == "train":
        res = flows.train_image_detector(data=args.data, model_name=args.name,
                                         model_dir=args.model_dir, labels=args.labels, size=size,
                                         normal_class=args.normal_class, random_state=args.seed,
                                         params=params)
    elif args.action == "score":
        res = flows.score_images(incoming=args.incoming, model=args.model, out=args.out,
                                 processed=args.processed, quarantine=args.quarantine,
                                 ledger=args.ledger, resize=args.resize, min_age=args.min_age,
                                 stale_after=args.stale_after)
    elif args.action == "augment":
        res = flows.augment_images(data=args.data, out=args.out, labels=args.labels, size=size,
                                   model=args.model, model_name=args.name,
                                   random_state=args.seed, params=params)
    else:
        res = flows.evaluate_image_augmentation_flow(
            data=args.data, labels=args.labels, size=size, positive=args.positive,
            rare_share=args.rare_share or None, n_splits=args.splits, random_state=args.seed,
            gan_params=params)
        res = {k: res[k] for k in ("positive", "table", "url")}
    print(json.dumps(res, indent=2, default=str))
    return 1 if args.action == "score" and res.get("quarantined") else 0


def _ui(args: argparse.Namespace) -> int:
    from genaug.tracking import tracking_uri

    uri = tracking_uri()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), "--workers", "1"]
    print(f"MLflow UI on http://{args.host}:{args.port}/#/experiments  (store {uri}); Ctrl-C stops")
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="genaug", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fit a detector on a table and register it in MLflow")
    t.add_argument("--data", required=True,
                   help="Parquet or CSV file, or images (a folder or .npz: the image detector)")
    t.add_argument("--name", default="genaug-detector", help="registered model name")
    t.add_argument("--target", help="column to leave out of the features")
    t.add_argument("--labels", help="column of 1 = anomaly labels for the registry gate")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-train-rows", type=int, metavar="N",
                   help="train on a seeded random sample of N rows when the file has more "
                        "(Parquet is read in batches: memory stays bounded)")
    t.add_argument("--params", help='JSON of AnomalyDetector params, e.g. \'{"n_members": 1}\'')
    t.add_argument("--validation", help="fixed labelled validation file for the champion gate")
    t.add_argument("--validation-label", default="is_anomaly",
                   help="its 0/1 label column (1 = anomaly)")
    t.add_argument("--min-val-auc", type=float, default=0.6, help="ROC-AUC floor of the gate")
    t.add_argument("--tolerance", type=float, default=0.0,
                   help="promote if ROC-AUC >= champion's minus this")
    t.set_defaults(func=_train)
    s = sub.add_parser("score", help="score a file with a registered or saved detector")
    s.add_argument("--data", required=True, help="Parquet or CSV file, or images (folder, .npz "
                                                 "or one image; the image detector's champion)")
    s.add_argument("--model", default="models:/genaug-detector@champion",
                   help="models:/<name>@<alias>, models:/<name>/<version> or a model folder")
    s.add_argument("--out", help="output Parquet (default data/scores/<stem>.scores.parquet)")
    s.add_argument("--key", help="column to copy into the output as the row key")
    s.set_defaults(func=_score)
    b = sub.add_parser("batch", help="score every new file in a folder; quarantine bad ones")
    b.add_argument("--incoming", default="data/incoming")
    b.add_argument("--model", default="models:/genaug-detector@champion")
    b.add_argument("--out", default="data/scores")
    b.add_argument("--processed", default="data/processed")
    b.add_argument("--quarantine", default="data/quarantine")
    b.add_argument("--ledger", default="data/ledger.sqlite")
    b.add_argument("--min-age", type=float, default=2.0,
                   help="skip files modified in the last N seconds (still being written)")
    b.add_argument("--stale-after", type=float, default=3600.0, metavar="SECONDS",
                   help="take over a ledger claim older than this (its run crashed); set it "
                        "above the longest time one file takes to score")
    b.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                   help="one task per file on Dask: a temporary local cluster (no value or "
                        "'local') or a scheduler address (needs the distributed extra)")
    b.add_argument("--dask-workers", type=int, default=2,
                   help="worker processes of the local Dask cluster")
    b.set_defaults(func=_batch)
    a = sub.add_parser("augment", help="write a table plus synthetic rows (is_synthetic) and a "
                                       "manifest; fits and registers an augmenter unless --model")
    a.add_argument("--data", required=True, help="Parquet or CSV file with a label column, or "
                                                 "labelled images (a folder or .npz)")
    a.add_argument("--target", help="the label column (tables)")
    a.add_argument("--out", help="output Parquet (default data/augmented/<stem>.augmented.parquet)")
    a.add_argument("--model", help="use this augmenter (models:/<name>@<alias> or a folder) "
                                   "instead of fitting one")
    a.add_argument("--name", default="genaug-augmenter", help="registered model name")
    a.add_argument("--strategy", default="auto",
                   help="rows to add, as imbalanced-learn's sampling_strategy: auto, minority, "
                        'a ratio such as 0.5, or JSON such as \'{">50K": 2000}\'')
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--params", help='JSON of Augmenter params, e.g. \'{"model": "gan"}\'')
    a.set_defaults(func=_augment)
    e = sub.add_parser("evaluate", help="with/without augmentation on real held-out rows, "
                                        "logged to MLflow")
    e.add_argument("--data", required=True, help="Parquet or CSV file with a label column, or "
                                                 "labelled images (a folder or .npz)")
    e.add_argument("--target", help="the label column (tables)")
    e.add_argument("--arms", help="comma-separated (default none,random,smote,vae,gan,"
                                  "default+filter)")
    e.add_argument("--classifiers", help="comma-separated (default logreg,rf,hgb)")
    e.add_argument("--splits", type=int, default=5)
    e.add_argument("--ratios", help="comma-separated ratios to choose from on validation")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--params", help="JSON of Augmenter params for the generator arms")
    e.add_argument("--max-rows", type=int, default=5000,
                   help="stratified subsample above this many rows (0 = all)")
    e.set_defaults(func=_evaluate)
    im = sub.add_parser("images", help="the same jobs for folders of PNG/JPEG or .npz images")
    isub = im.add_subparsers(dest="action", required=True)
    it = isub.add_parser("train", help="fit an image anomaly detector and register it")
    isc = isub.add_parser("score", help="score an incoming folder of images; quarantine bad ones")
    ia = isub.add_parser("augment", help="fit the image GAN; write real + generated images (.npz)")
    ie = isub.add_parser("evaluate", help="image augmentation evaluation, logged to MLflow")
    for q in (it, ia, ie):
        q.add_argument("--data", required=True, help="class-folder tree, folder + --labels CSV, "
                                                     "or .npz with X (and y)")
        q.add_argument("--labels", help="CSV with columns file,label")
        q.add_argument("--size", help="resize every image to HxW, e.g. 28x28")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--params", help="JSON of estimator parameters")
    it.add_argument("--name", default="genaug-image-detector", help="registered model name")
    it.add_argument("--model-dir", help="also save the model to this folder")
    it.add_argument("--normal-class", help="train on this class only")
    isc.add_argument("--incoming", default="data/images/incoming")
    isc.add_argument("--model", default="models:/genaug-image-detector@champion",
                     help="registry URI or model folder")
    isc.add_argument("--ledger", default="data/images/ledger.sqlite")
    isc.add_argument("--stale-after", type=float, default=3600.0,
                     help="seconds after which a crashed run's claim is taken over")
    isc.add_argument("--out", default="data/images/scores")
    isc.add_argument("--processed", default="data/images/processed")
    isc.add_argument("--quarantine", default="data/images/quarantine")
    isc.add_argument("--resize", action="store_true", help="resize to the model's size")
    isc.add_argument("--min-age", type=float, default=2.0)
    ia.add_argument("--out", default="data/augmented/images.augmented.npz")
    ia.add_argument("--model", help="use this registered/saved image augmenter instead of fitting")
    ia.add_argument("--name", default="genaug-image-augmenter", help="registered model name")
    ie.add_argument("--positive", help="the rare class (default: the rarest)")
    ie.add_argument("--rare-share", type=float, default=0.05,
                    help="cut the positive class to this share of the images (0 = as is)")
    ie.add_argument("--splits", type=int, default=5)
    im.set_defaults(func=_images)
    u = sub.add_parser("ui", help="start the MLflow UI on the local store")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=5000)
    u.set_defaults(func=_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``genaug`` console script."""
    args = build_parser().parse_args(argv)
    from genaug.errors import GenaugError

    try:
        return args.func(args)
    except (GenaugError, FileNotFoundError) as e:  # bad input or a path that is not there
        print(f"genaug: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
