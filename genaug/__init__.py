"""genaug: anomaly detection and data augmentation with deep generative models.

Importing genaug starts no Prefect, no MLflow and no training; flows live in ``pipelines/`` and
every MLflow call in :mod:`genaug.tracking`.
"""

from .augmenter import Augmenter
from .detector import AnomalyDetector
from .errors import GenaugError, GenaugInputError, ModelFormatError
from .io import read_table

__all__ = [
    "AnomalyDetector",
    "Augmenter",
    "GenaugError",
    "GenaugInputError",
    "ModelFormatError",
    "read_table",
]
__version__ = "0.1.0"
