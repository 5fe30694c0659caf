"""ArrayForest reproduces scikit-learn's IsolationForest scores exactly."""

import numpy as np
from sklearn.ensemble import IsolationForest

from genaug.forest import ArrayForest


def test_array_forest_matches_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 5))
    Y = rng.normal(scale=2, size=(300, 5))
    ours = ArrayForest.fit(X, n_estimators=50, random_state=4)
    ref = IsolationForest(n_estimators=50, random_state=4).fit(X)
    np.testing.assert_allclose(ours.score(Y, chunk=64), -ref.score_samples(Y), rtol=1e-12)
