"""The README's main job: train, register and score on the shipped sample, no server needed."""

from __future__ import annotations

import logging

from pipelines.score import score
from pipelines.train_detector import train_detector


def main() -> None:
    """Train on ``data/sample/adult_train.parquet``, then score ``adult_incoming.parquet``."""
    from genaug import tracking

    logging.getLogger("genaug").setLevel(logging.INFO)
    trained = train_detector()
    scored = score(data="data/sample/adult_incoming.parquet",
                   model=f"models:/{trained['registered_name']}@champion")
    print("\n=== genaug main job done ===")
    print(f"model      : {trained['registered_name']} v{trained['version']} "
          f"({trained['gate']}; champion={trained['promoted']})")
    print(f"scores     : {scored['output']} ({scored['n_flagged']} of {scored['n_rows']} "
          "rows flagged)")
    print(f"train run  : {trained['url']}")
    print(f"score run  : {scored['url']}")
    print(f"MLflow UI  : {tracking.ui_command()}")
    print("             (or: .venv/bin/genaug ui) then open the links above")


if __name__ == "__main__":
    main()
