"""genaug: anomaly detection and data augmentation with deep generative models.

Importing genaug starts no Prefect, no MLflow and no training; flows live in ``pipelines/`` and
every MLflow call in :mod:`genaug.tracking`.
"""

import importlib
from typing import Any

from .augmenter import Augmenter
from .detector import AnomalyDetector
from .errors import GenaugError, GenaugInputError, ModelFormatError
from .image_augmenter import ImageAugmenter
from .image_detector import ImageAnomalyDetector
from .images import read_images
from .io import read_table

__all__ = [
    "AnomalyDetector",
    "Augmenter",
    "EvaluationResult",
    "FidelityReport",
    "GenaugError",
    "GenaugInputError",
    "ImageAnomalyDetector",
    "ImageAugmenter",
    "ModelFormatError",
    "evaluate_augmentation",
    "fidelity_report",
    "read_images",
    "read_table",
]
__version__ = "0.1.0"

# imported on first use: they pull in matplotlib and scipy.stats (seconds at start-up)
_LAZY = {"EvaluationResult": "evaluation", "evaluate_augmentation": "evaluation",
         "FidelityReport": "fidelity", "fidelity_report": "fidelity"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

