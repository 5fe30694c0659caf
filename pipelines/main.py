"""The README's main job on the shipped samples, no server needed.

Tables: train and register a detector on ``data/sample/adult_train.parquet``, score
``adult_incoming.parquet``, and produce an augmented copy of the training table.
Images: the same three steps through the same generic flows on ``digits_train.npz`` /
``digits_incoming.npz`` (they see an image input and use the image models).
``--skip-images`` runs the tables only.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from pipelines.augment import augment
from pipelines.score import score
from pipelines.train_detector import train_detector

DIGITS_TRAIN = "data/sample/digits_train.npz"
DIGITS_INCOMING = "data/sample/digits_incoming.npz"
# the image GAN's step budget in the main job (its default is longer; this keeps the job short)
MAIN_GAN_STEPS = 800


def tables() -> list[str]:
    """Train on ``adult_train.parquet``, score ``adult_incoming.parquet``, then augment the
    training table (the rare class ``>50K`` up to the majority's count)."""
    trained = train_detector()
    scored = score(data="data/sample/adult_incoming.parquet",
                   model=f"models:/{trained['registered_name']}@champion")
    augmented = augment()
    return [
        "tables",
        f"model      : {trained['registered_name']} v{trained['version']} "
        f"({trained['gate']}; champion={trained['promoted']})",
        f"scores     : {scored['output']} ({scored['n_flagged']} of {scored['n_rows']} "
        "rows flagged)",
        f"augmented  : {augmented['output']} ({augmented['rows_real']} real + "
        f"{augmented['rows_synthetic']} synthetic rows; manifest {augmented['manifest']})",
        f"augmenter  : {augmented['model']['name']} v{augmented['model']['version']} "
        f"({augmented['model']['gate']})",
        f"train run  : {trained['url']}",
        f"score run  : {scored['url']}",
        f"augment run: {augmented['url']}",
    ]


def images() -> list[str]:
    """Train the image detector on the digits sample, score the incoming digits (10 carry a
    planted bright blotch), and grow the rare class ``8`` with the image GAN."""
    import pandas as pd

    trained = train_detector(data=DIGITS_TRAIN)
    scored = score(data=DIGITS_INCOMING)
    augmented = augment(data=DIGITS_TRAIN, params={"max_steps": MAIN_GAN_STEPS})
    flags = pd.read_parquet(scored["output"])["is_anomaly"].to_numpy()
    with np.load(DIGITS_INCOMING) as z:
        defect = z["defect"]
    m = augmented["model"]
    return [
        "images",
        f"model      : {trained['registered_name']} v{trained['version']} "
        f"({trained['gate']}; champion={trained['promoted']})",
        f"scores     : {scored['output']} ({scored['n_flagged']} of {scored['n_rows']} images "
        f"flagged; {int(flags[defect].sum())} of {int(defect.sum())} planted defects)",
        f"augmented  : {augmented['out']} ({augmented['n_real']} real + "
        f"{augmented['n_generated']} generated images)",
        f"augmenter  : {m['name']} v{m['version']} ({m['gate']})",
        f"train run  : {trained['url']}",
        f"score run  : {scored['url']}",
        f"augment run: {augmented['url']}",
    ]


def main(argv: list[str] | None = None) -> None:
    """Run the tables part, then (unless ``--skip-images``) the images part; print a summary."""
    from genaug import tracking

    ap = argparse.ArgumentParser(prog="python -m pipelines.main", description=__doc__)
    ap.add_argument("--skip-images", action="store_true", help="run the tables part only")
    args = ap.parse_args(argv)
    logging.getLogger("genaug").setLevel(logging.INFO)
    parts = [tables()]
    if not args.skip_images:
        parts.append(images())
    print("\n=== genaug main job done ===")
    for part in parts:
        print(f"[{part[0]}]")
        print("\n".join(part[1:]))
    print(f"MLflow UI  : {tracking.ui_command()}")
    print("             (or: .venv/bin/genaug ui) then open the links above")


if __name__ == "__main__":
    main()
