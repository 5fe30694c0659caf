"""genaug: anomaly detection and data augmentation with deep generative models.

Importing genaug starts no Prefect, no MLflow and no training; flows live in ``pipelines/`` and
every MLflow call in :mod:`genaug.tracking`.
"""

from .detector import AnomalyDetector
from .errors import GenaugError, GenaugInputError, ModelFormatError
from .image_augmenter import ImageAugmenter
from .image_detector import ImageAnomalyDetector
from .images import read_images
from .io import read_table

__all__ = ["AnomalyDetector", "GenaugError", "GenaugInputError", "ImageAnomalyDetector",
           "ImageAugmenter", "ModelFormatError", "read_images", "read_table"]
__version__ = "0.1.0"
