"""Rebuild ``digits_train.npz`` and ``digits_incoming.npz`` from scikit-learn's bundled digits.

Source: the UCI "Optical Recognition of Handwritten Digits" test set as bundled with
scikit-learn (``sklearn.datasets.load_digits``; 1,797 8x8 images, pixel values 0..16).
Licence: CC BY 4.0 (UCI Machine Learning Repository); scikit-learn is BSD-3-Clause.

* pixels rescaled to uint8 0..255;
* a seeded permutation: 200 images become ``digits_incoming.npz`` (``X``, ``y``, and
  ``defect``: the last 10 carry a planted bright 3x3 blotch, the anomalies to find);
* the other 1,597 become ``digits_train.npz`` with class 8 cut to 30 images (the rare class
  the main job grows with the image GAN): 1,474 images.

Run from the repository root: ``.venv/bin/python data/sample/make_digits_sample.py``.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    d = load_digits()
    X = np.round(d.images * 255 / 16).astype(np.uint8)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    inc, tr = idx[:200], idx[200:]
    eights = tr[y[tr] == 8]
    drop = set(eights[30:].tolist())
    tr = np.array([i for i in tr if i not in drop])
    Xi, yi = X[inc].copy(), y[inc]
    defect = np.zeros(len(inc), bool)
    defect[-10:] = True
    for k in np.flatnonzero(defect):
        r, c = rng.integers(0, 6, 2)
        Xi[k, r:r + 3, c:c + 3] = 255 - Xi[k, r:r + 3, c:c + 3] // 4
    np.savez_compressed("data/sample/digits_train.npz", X=X[tr], y=y[tr])
    np.savez_compressed("data/sample/digits_incoming.npz", X=Xi, y=yi, defect=defect)


if __name__ == "__main__":
    main()
