"""The README's main job on the shipped sample, no server needed: train and register a detector,
score new rows, and produce an augmented copy of the training table."""

from __future__ import annotations

import logging

from pipelines.augment import augment
from pipelines.score import score
from pipelines.train_detector import train_detector


def main() -> None:
    """Train on ``data/sample/adult_train.parquet``, score ``adult_incoming.parquet``, then
    augment the training table (the rare class ``>50K`` up to the majority's count)."""
    from genaug import tracking

    logging.getLogger("genaug").setLevel(logging.INFO)
    trained = train_detector()
    scored = score(data="data/sample/adult_incoming.parquet",
                   model=f"models:/{trained['registered_name']}@champion")
    augmented = augment()
    print("\n=== genaug main job done ===")
    print(f"model      : {trained['registered_name']} v{trained['version']} "
          f"({trained['gate']}; champion={trained['promoted']})")
    print(f"scores     : {scored['output']} ({scored['n_flagged']} of {scored['n_rows']} "
          "rows flagged)")
    print(f"augmented  : {augmented['output']} ({augmented['rows_real']} real + "
          f"{augmented['rows_synthetic']} synthetic rows; manifest {augmented['manifest']})")
    print(f"augmenter  : {augmented['model']['name']} v{augmented['model']['version']} "
          f"({augmented['model']['gate']})")
    print(f"train run  : {trained['url']}")
    print(f"score run  : {scored['url']}")
    print(f"augment run: {augmented['url']}")
    print(f"MLflow UI  : {tracking.ui_command()}")
    print("             (or: .venv/bin/genaug ui) then open the links above")


if __name__ == "__main__":
    main()
