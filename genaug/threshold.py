"""The label-free threshold shared by the table and image anomaly detectors."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted


class ThresholdMixin:
    """``set_threshold`` for detectors that keep ``validation_scores_`` (scores of held-out
    training data) and a ``contamination`` parameter."""

    contamination: float
    validation_scores_: np.ndarray

    def set_threshold(
        self, value: float | None = None, *, contamination: float | None = None
    ) -> Any:
        """Set ``threshold_`` directly, or as a quantile of validation scores; no refit."""
        check_is_fitted(self, "validation_scores_")
        if value is not None:
            self.threshold_ = float(value)
        else:
            c = self.contamination if contamination is None else contamination
            if not 0.0 < c < 0.5:
                raise ValueError(f"contamination must be in (0, 0.5), got {c}")
            self.threshold_ = float(np.quantile(self.validation_scores_, 1.0 - c))
        self.flag_rate_ = float(np.mean(self.validation_scores_ > self.threshold_))
        return self
