"""Images: ingest edge cases, the conv-VAE detector's maps, the conditional GAN, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genaug.errors import (
    CorruptFileError,
    CorruptImageError,
    EmptyInputError,
    GenaugInputError,
    ImageShapeError,
    ImageSizeError,
    LabelsFileError,
    ModelFormatError,
    UnsupportedFormatError,
)
from genaug.image_augmenter import ImageAugmenter
from genaug.image_detector import ImageAnomalyDetector, _knn_distance
from genaug.images import read_image, read_images, to_unit_array

# ------------------------------------------------------------------------------------ helpers


def _png(path, arr, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path, format=fmt)
    return path


def blobs(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """Dark images with one soft blob near the centre (the 'normal' images)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        cy, cx = size / 2 + rng.normal(0, 1, 2)
        r = rng.uniform(2.0, 3.0)
        img = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        out[i] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    return out


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images: class 0 bright on the left half, class 1 bright on the right half."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.integers(0, 40, (n, 8, 8))
    X[y == 0, :, :4] += 180
    X[y == 1, :, 4:] += 180
    return X.astype(np.uint8), y


FAST = {"max_steps": 120, "base": 8, "latent": 4, "batch_size": 32, "device": "cpu"}

# ------------------------------------------------------------------------------------- ingest


def test_class_folders_grey_and_labels(tmp_path):
    for cls, v in (("cat", 10), ("dog", 200)):
        for i in range(3):
            _png(tmp_path / cls / f"{i}.png", np.full((5, 6), v + i))
    (tmp_path / ".DS_Store").write_text("ignored")
    s = read_images(tmp_path)
    assert s.X.shape == (6, 5, 6) and s.X.dtype == np.uint8
    assert s.class_names == ["cat", "dog"]
    assert list(s.y) == ["cat"] * 3 + ["dog"] * 3
    assert s.X[4, 0, 0] == 201 and s.shape == (1, 5, 6)


def test_labels_csv_and_its_errors(tmp_path):
    for i in range(3):
        _png(tmp_path / f"im{i}.png", np.full((4, 4), 50 * i))
    (tmp_path / "labels.csv").write_text("file,label\nim0.png,0\nim2.png,1\n")
    s = read_images(tmp_path, labels=tmp_path / "labels.csv")
    assert s.y.tolist() == [0, 1] and s.y.dtype == np.int64 and s.X[1, 0, 0] == 100
    (tmp_path / "bad.csv").write_text("file,label\nim0.png,0\nnope.png,1\n")
    with pytest.raises(LabelsFileError) as e:
        read_images(tmp_path, labels=tmp_path / "bad.csv")
    assert e.value.file.endswith("bad.csv") and "nope.png" in str(e.value)
    (tmp_path / "cols.csv").write_text("path,label\nim0.png,0\n")
    with pytest.raises(LabelsFileError, match="lacks a column"):
        read_images(tmp_path, labels=tmp_path / "cols.csv")


def test_colour_policy_auto_makes_rgb_if_any_is_colour(tmp_path):
    _png(tmp_path / "a.png", np.full((4, 4), 70))
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    _png(tmp_path / "b.png", rgb)
    s = read_images(tmp_path)
    assert s.X.shape == (2, 4, 4, 3)
    assert (s.X[0] == 70).all() and (s.X[1, ..., 0] == 255).all() and (s.X[1, ..., 1] == 0).all()
    grey = read_images(tmp_path, mode="L")
    assert grey.X.shape == (2, 4, 4)


def test_size_policy_reject_names_file_or_resize(tmp_path):
    _png(tmp_path / "a.png", np.zeros((8, 8)))
    _png(tmp_path / "b.png", np.zeros((8, 10)))
    with pytest.raises(ImageSizeError) as e:
        read_images(tmp_path)
    assert e.value.file.endswith("b.png") and e.value.expected.startswith("8x8")
    assert e.value.found == "8x10"
    s = read_images(tmp_path, size=(6, 7))
    assert s.X.shape == (2, 6, 7)


def test_jpeg_is_read(tmp_path):
    _png(tmp_path / "x.jpg", np.full((8, 8), 128), fmt="JPEG")
    assert abs(int(read_image(tmp_path / "x.jpg")[3, 3]) - 128) <= 2


@pytest.mark.parametrize("case", ["text_as_png", "truncated", "empty", "wrong_type"])
def test_bad_files_get_named_errors(tmp_path, case):
    _png(tmp_path / "good.png", np.zeros((8, 8)))
    if case == "text_as_png":
        bad = tmp_path / "bad.png"
        bad.write_text("this is not a PNG")
        err = CorruptImageError
    elif case == "truncated":
        bad = tmp_path / "bad.png"
        full = _png(tmp_path / "full.png", np.random.default_rng(0).integers(0, 255, (32, 32)))
        bad.write_bytes(full.read_bytes()[:200])
        full.unlink()
        err = CorruptImageError
    elif case == "empty":
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"")
        err = EmptyInputError
    else:
        bad = tmp_path / "notes.txt"
        bad.write_text("hello")
        err = UnsupportedFormatError
    with pytest.raises(err) as e:
        read_images(tmp_path)
    assert e.value.file == str(bad)
    assert isinstance(e.value, GenaugInputError) and e.value.to_dict()["file"] == str(bad)


def test_npz_source(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, (5, 6, 6)).astype(np.uint8)
    np.savez(tmp_path / "ok.npz", X=X, y=np.arange(5))
    s = read_images(tmp_path / "ok.npz")
    assert np.array_equal(s.X, X) and s.y.tolist() == list(range(5))
    np.savez(tmp_path / "noX.npz", images=X)
    with pytest.raises(ImageShapeError, match="no array 'X'"):
        read_images(tmp_path / "noX.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([X[0], "a"], dtype=object))
    with pytest.raises(CorruptFileError):
        read_images(tmp_path / "obj.npz")
    np.savez(tmp_path / "short.npz", X=X, y=np.arange(3))
    with pytest.raises(ImageShapeError, match="labels do not match"):
        read_images(tmp_path / "short.npz")


def test_unit_array_layouts_and_range_checks():
    a = to_unit_array(np.full((2, 3, 4), 255, np.uint8))
    assert a.shape == (2, 1, 3, 4) and a.dtype == np.float32 and a.max() == 1.0
    assert to_unit_array(np.zeros((2, 3, 4, 3))).shape == (2, 3, 3, 4)
    with pytest.raises(ImageShapeError, match="out of range"):
        to_unit_array(np.full((1, 2, 2), 2.0))
    with pytest.raises(ImageShapeError, match="shape"):
        to_unit_array(np.zeros((2, 3, 4, 5)))


# ----------------------------------------------------------------------------------- detector


@pytest.fixture(scope="module")
def fitted_detector():
    X = blobs(120)
    det = ImageAnomalyDetector(max_steps=250, base=8, latent=4, random_state=0,
                               device="cpu", contamination=0.05).fit(X)
    return det, X


def test_planted_square_scores_higher_and_map_peaks_there(fitted_detector):
    det, _ = fitted_detector
    normal = blobs(20, seed=1)
    defect = normal.copy()
    defect[:, 2:5, 11:14] = 255  # a bright 3x3 square away from the blob
    s_n, s_d = det.decision_function(normal), det.decision_function(defect)
    assert (s_d > s_n).all()
    maps = det.explain(defect)
    assert maps.shape == (20, 16, 16)
    peaks = [np.unravel_index(np.argmax(m), m.shape) for m in maps]
    assert all(2 <= r <= 4 and 11 <= c <= 13 for r, c in peaks)
    # the map is the score's per-pixel part: map sum + KL = score
    assert np.allclose(maps.sum((1, 2)) + det.latent_score(defect), det.vae_score(defect),
                       rtol=1e-5)
    assert (det.vae_score(defect) > det.vae_score(normal)).all()
    assert det.predict(defect).mean() > det.predict(normal).mean()


def test_threshold_is_label_free_quantile(fitted_detector):
    det, _ = fitted_detector
    assert det.threshold_ == pytest.approx(np.quantile(det.validation_scores_, 0.95))
    assert len(det.validation_index_) == 12  # 10 % of 120 held out
    assert det.history_ and "val_loss" in det.history_[-1]


def test_detector_deterministic_and_save_load(fitted_detector, tmp_path):
    det, X = fitted_detector
    quick = dict(det.get_params(), max_steps=20)
    one, two = (ImageAnomalyDetector(**quick).fit(X[:60]) for _ in range(2))
    assert np.array_equal(one.decision_function(X[:10]), two.decision_function(X[:10]))
    other = ImageAnomalyDetector(**dict(quick, random_state=1)).fit(X[:60])
    assert not np.array_equal(one.decision_function(X[:10]), other.decision_function(X[:10]))
    det.save(tmp_path / "m")
    back = ImageAnomalyDetector.load(tmp_path / "m", device="cpu")
    assert np.allclose(back.decision_function(X[:10]), det.decision_function(X[:10]))
    assert back.threshold_ == det.threshold_
    assert np.array_equal(back.explain(X[:3]), det.explain(X[:3]))
    w = tmp_path / "m" / "weights.pt"
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.raises(ModelFormatError):
        ImageAnomalyDetector.load(tmp_path / "m")


def test_latent_knn_leaves_training_images_out_and_old_format_loads(fitted_detector, tmp_path):
    det, X = fitted_detector
    assert det.combine == "knn+iforest" and det.latent_reference_.shape[1] == 120 - 12
    fit_idx = np.setdiff1d(np.arange(120), det.validation_index_)
    # scored from outside, a training image is its own nearest neighbour (one zero of k)
    inside = det.latent_distance(X[fit_idx])
    ref = det.latent_reference_[0]
    loo = _knn_distance(ref, ref, det.n_neighbors, exclude_self=True)
    assert (inside < loo + 1e-6).all() and (inside < loo).mean() > 0.9
    # the latent part's calibration saw the leave-one-out distances
    assert det.calibrators_["latent"](loo.max()) == pytest.approx(1.0)
    # the Mahalanobis variant (the version-1 default) still fits, and a version-1 folder loads
    quick = dict(det.get_params(), max_steps=20, combine="latent+iforest", n_trees=100,
                 calibration="cdf")
    old = ImageAnomalyDetector(**quick).fit(X[:60])
    assert old.latent_reference_ is None and old.latent_precision_ is not None
    old.save(tmp_path / "v1")
    cfg_path = tmp_path / "v1" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["format_version"] = 1
    for new in ("n_neighbors", "calibration"):
        del cfg["params"][new]
    del cfg["calibration_offsets"]
    cfg_path.write_text(json.dumps(cfg))
    back = ImageAnomalyDetector.load(tmp_path / "v1", device="cpu")
    assert back.combine == "latent+iforest" and back.calibration == "cdf"
    assert np.allclose(back.decision_function(X[:10]), old.decision_function(X[:10]))


def test_detector_rejects_other_sizes_and_channels(fitted_detector):
    det, _ = fitted_detector
    with pytest.raises(ImageSizeError) as e:
        det.decision_function(np.zeros((2, 8, 8), np.uint8), file="x.npz")
    assert e.value.file == "x.npz" and e.value.expected == "16x16"
    with pytest.raises(ImageShapeError, match="channel"):
        det.decision_function(np.zeros((2, 16, 16, 3), np.uint8))


def test_detector_rgb_and_odd_size():
    X = np.random.default_rng(0).integers(0, 60, (30, 10, 9, 3)).astype(np.uint8)
    det = ImageAnomalyDetector(max_steps=5, base=4, latent=2, random_state=0,
                               device="cpu").fit(X)
    assert det.explain(X[:2]).shape == (2, 10, 9) and det.image_shape_ == (3, 10, 9)


# ---------------------------------------------------------------------------------- augmenter


@pytest.fixture(scope="module")
def fitted_gan():
    X, y = halves(200)
    aug = ImageAugmenter(max_steps=300, base=8, latent=8, embed=4, n_checks=3,
                         check_samples=16, random_state=0, device="cpu").fit(X, y)
    return aug, X, y


def test_gan_samples_follow_the_requested_class(fitted_gan):
    aug, _, _ = fitted_gan
    for c in (0, 1):
        xs, ys = aug.sample(50, label=c)
        assert xs.shape == (50, 8, 8) and xs.dtype == np.uint8 and (ys == c).all()
        left, right = xs[:, :, :4].mean((1, 2)), xs[:, :, 4:].mean((1, 2))
        share = np.mean(left > right) if c == 0 else np.mean(right > left)
        assert share >= 0.9
    checks = [h for h in aug.history_ if "class_share" in h]
    assert len(checks) == 3
    best = max(checks, key=lambda h: h["selection_score"])
    assert aug.selected_["step"] == best["step"]
    with pytest.raises(GenaugInputError, match="unknown class"):
        aug.sample(2, label=7)


def test_gan_fit_resample_balances_and_keeps_originals(fitted_gan):
    aug, X, y = fitted_gan
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:20]]
    small = ImageAugmenter(**dict(aug.get_params(), max_steps=20, n_checks=1))
    X_res, y_res = small.fit_resample(X[keep], y[keep])
    assert np.array_equal(X_res[:len(keep)], X[keep]) and np.array_equal(y_res[:len(keep)],
                                                                         y[keep])
    assert np.bincount(y_res).tolist() == [100, 100]


def test_gan_deterministic_and_save_load(fitted_gan, tmp_path):
    aug, X, y = fitted_gan
    aug.reseed(0)
    a, _ = aug.sample(10, label=1)
    aug.save(tmp_path / "g")
    back = ImageAugmenter.load(tmp_path / "g", device="cpu")
    b, yb = back.sample(10, label=1)
    assert np.array_equal(a, b) and (yb == 1).all()
    assert back.history_ == aug.history_
    twin = ImageAugmenter(**dict(aug.get_params(), max_steps=30, n_checks=1)).fit(X, y)
    twin2 = ImageAugmenter(**dict(aug.get_params(), max_steps=30, n_checks=1)).fit(X, y)
    assert np.array_equal(twin.sample(5, label=0)[0], twin2.sample(5, label=0)[0])


def test_truncated_noise_bounds_and_off_is_plain_normal():
    import torch

    from genaug.nn.image_gan import truncated_normal

    z = truncated_normal(4000, 8, 0.7, torch.Generator().manual_seed(0))
    assert z.shape == (4000, 8) and z.abs().max() <= 0.7 and z.std() > 0.3
    plain = truncated_normal(5, 3, None, torch.Generator().manual_seed(1))
    assert torch.equal(plain, torch.randn((5, 3), generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("conditioning", ["cbn", "concat"])
def test_gan_options_fit_sample_and_save_load(conditioning, tmp_path):
    X, y = halves(60)
    aug = ImageAugmenter(max_steps=6, n_checks=2, base=4, latent=4, embed=2, check_samples=4,
                         conditioning=conditioning, aux_weight=0.5, truncation=1.0,
                         min_share_weight=0.5, random_state=0, device="cpu").fit(X, y)
    assert aug.sample(3, label=1)[0].shape == (3, 8, 8)
    aug.reseed(0)
    a, _ = aug.sample(4, label=0)
    back = ImageAugmenter.load(aug.save(tmp_path / "g"), device="cpu")
    assert back.get_params()["conditioning"] == conditioning and back.truncation == 1.0
    assert np.array_equal(a, back.sample(4, label=0)[0])
    with pytest.raises(ValueError, match="truncation"):
        ImageAugmenter(truncation=0.0).fit(X, y)


def test_gan_loads_format_version_1(tmp_path):
    """A model saved before the conditioning / truncation options loads and samples as then."""
    import json

    X, y = halves(40)
    aug = ImageAugmenter(max_steps=4, n_checks=1, base=4, latent=4, embed=2, check_samples=4,
                         conditioning="concat", truncation=None, random_state=0,
                         device="cpu").fit(X, y)
    folder = aug.save(tmp_path / "g")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["format_version"] = 1
    for k in ("conditioning", "aux_weight", "truncation", "min_share_weight"):
        cfg["params"].pop(k)
    cfg["dims"].pop("conditioning")
    (folder / "config.json").write_text(json.dumps(cfg))
    back = ImageAugmenter.load(folder, device="cpu")
    assert back.conditioning == "concat" and back.truncation is None
    aug.reseed(3)
    back.reseed(3)
    assert np.array_equal(aug.sample(4, label=1)[0], back.sample(4, label=1)[0])


def test_gan_pixel_table_roundtrip():
    X, y = halves(40)
    df = pd.DataFrame(X.reshape(40, -1) / 255.0, columns=[f"p{i}" for i in range(64)])
    aug = ImageAugmenter(max_steps=4, n_checks=1, base=4, latent=4, check_samples=4,
                         image_shape=(8, 8), random_state=0, device="cpu")
    X_res, y_res = aug.fit_resample(df.iloc[:30], y[:30])  # 15 / 15: nothing to add
    assert len(X_res) == 30
    xs, _ = aug.sample(3, label=1)
    assert list(xs.columns) == list(df.columns) and xs.to_numpy().max() <= 1.0
    with pytest.raises(ImageShapeError, match="image_shape"):
        ImageAugmenter(max_steps=2).fit(df, y)


def test_image_augmentation_evaluation_runs_on_pixels():
    from genaug.image_evaluation import evaluate_image_augmentation

    X, y = halves(120, seed=3)
    y = np.where(np.arange(120) < 100, y, 2)  # a small third class
    X[y == 2, :4] = 250
    res = evaluate_image_augmentation(
        X, y, classifiers=("logreg",), n_splits=2, positive=2,
        gan_params={"max_steps": 10, "n_checks": 1, "base": 4, "latent": 4,
                    "check_samples": 4, "device": "cpu"})
    r = res.records
    assert set(r.arm) == {"none", "random", "gan"}
    assert (r[r.arm == "gan"].n_synthetic > 0).all()
    assert set(res.verdicts().arm) == {"random", "gan"}


# -------------------------------------------------------------------------------- flows, MLflow


def test_image_flows_end_to_end(prefect_api, mlflow_store):
    """The generic train flow takes a folder of images and registers the image detector; the
    incoming-folder job loads it by name, quarantines bad files, and scores each content once."""
    import contextlib
    import io

    import mlflow
    from mlflow import MlflowClient

    from pipelines.augment import augment
    from pipelines.images import score_images
    from pipelines.train_detector import train_detector

    root = mlflow_store
    for i, img in enumerate(blobs(40, seed=5)):
        _png(root / "train" / "normal" / f"{i}.png", img)
    incoming = root / "incoming"
    good = blobs(3, seed=6)
    _png(incoming / "a.png", good[0])
    _png(incoming / "b.png", good[1])
    defect = good[2].copy()
    defect[1:5, 10:14] = 255
    _png(incoming / "c_defect.png", defect)
    (incoming / "d_corrupt.png").write_text("not an image")
    _png(incoming / "e_small.png", good[0][:8, :8])
    (incoming / "f_notes.txt").write_text("hello")
    quarantine = root / "quarantine"
    folders = {"out": str(root / "out"), "processed": str(root / "processed"),
               "quarantine": str(quarantine), "ledger": str(root / "ledger.sqlite"),
               "min_age": 0}
    with contextlib.redirect_stdout(io.StringIO()):
        rec = train_detector(data=str(root / "train"),
                             params={"max_steps": 150, "base": 8, "latent": 4, "device": "cpu"})
        res = score_images(incoming=str(incoming), **folders)
    assert rec["n_images"] == 40
    assert (rec["registered_name"], rec["version"], rec["promoted"]) == (
        "genaug-image-detector", 1, True)
    assert "version 1" in res["model"]
    assert sorted(res["scored"]) == ["a.png", "b.png", "c_defect.png"]
    assert sorted(res["quarantined"]) == ["d_corrupt.png", "e_small.png", "f_notes.txt"]
    reasons = {p.name: p.read_text() for p in quarantine.glob("*.reason.json")}
    assert "CorruptImageError" in reasons["d_corrupt.png.reason.json"]
    assert "ImageSizeError" in reasons["e_small.png.reason.json"]
    assert "UnsupportedFormatError" in reasons["f_notes.txt.reason.json"]
    assert not any(incoming.iterdir())
    scores = pd.read_parquet(res["output"]).set_index("file")
    assert scores.loc["c_defect.png", "score"] > scores.loc[["a.png", "b.png"], "score"].max()
    assert 1 <= scores.loc["c_defect.png", "peak_row"] <= 4
    c = MlflowClient()
    arts = [a.path for a in c.list_artifacts(rec["run_id"], "plots")]
    assert "plots/top_anomalies.png" in arts
    assert len(c.get_metric_history(rec["run_id"], "train_loss")) > 5

    # the same content again (new name) is recognised by the ledger: moved, not rescored
    (root / "processed" / "a.png").rename(incoming / "a_again.png")
    with contextlib.redirect_stdout(io.StringIO()):
        again = score_images(incoming=str(incoming), **folders)
    assert again["duplicates"] == ["a_again.png"] and again["scored"] == []
    assert again["output"] is None and len(list((root / "out").glob("*.parquet"))) == 1

    # the registered pyfunc scores a pixel table like the detector does
    pyfunc = mlflow.pyfunc.load_model("models:/genaug-image-detector@champion")
    from genaug.tracking import pixel_frame

    px = pixel_frame(np.stack([good[0], defect])[:, None] / 255.0)
    out = pyfunc.predict(px)
    assert out["score"].iloc[1] > out["score"].iloc[0]
    assert out.columns.tolist() == ["score", "is_anomaly", "peak_row", "peak_col"]

    X, y = halves(60)
    for i, (img, lab) in enumerate(zip(X, y)):
        if lab == 0 or i < 20:
            _png(root / "labelled" / str(lab) / f"{i}.png", img)
    with contextlib.redirect_stdout(io.StringIO()):
        aug = augment(data=str(root / "labelled"), out=str(root / "aug.npz"),
                      params={"max_steps": 20, "n_checks": 2, "base": 4, "latent": 4,
                              "check_samples": 4, "batch_size": 16, "device": "cpu"})
    z = np.load(root / "aug.npz")
    assert np.unique(z["y"], return_counts=True)[1].tolist() == [30, 30]
    assert z["is_synthetic"].sum() == aug["n_generated"] == 20
    assert not z["is_synthetic"][:40].any()
    run_id = aug["model"]["run_id"]
    arts = [a.path for a in c.list_artifacts(run_id, "samples")]
    assert arts == ["samples/selected.png"]
    n_epochs = len(c.get_metric_history(run_id, "d_loss"))  # one d_loss per epoch
    grids = [a.path for a in c.list_artifacts(run_id, "images")]
    assert len([g for g in grids if g.endswith(".png")]) == n_epochs >= 2  # one grid per epoch
    assert aug["model"]["name"] == "genaug-image-augmenter"
    gen = mlflow.pyfunc.load_model(f"models:/genaug-image-augmenter/{aug['model']['version']}")
    made = gen.predict(pd.DataFrame({"label": ["0", "1"], "n": [2, 3]}))
    assert made["label"].tolist() == ["0", "0", "1", "1", "1"] and made.shape[1] == 8 * 8 + 1
    assert made.drop(columns="label").to_numpy().min() >= 0

    # a registered augmenter is reused without refitting
    with contextlib.redirect_stdout(io.StringIO()):
        again = augment(data=str(root / "labelled"), out=str(root / "aug2.npz"),
                        model=f"models:/genaug-image-augmenter/{aug['model']['version']}")
    z2 = np.load(root / "aug2.npz")
    assert again["model"]["gate"] == "loaded" and "version 1" in again["model"]["name"]
    assert z2["is_synthetic"].sum() == 20 and (z2["y"][z2["is_synthetic"]] == "1").all()


def test_gan_in_imblearn_pipeline_and_clone():
    from imblearn.pipeline import Pipeline
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression

    X, y = halves(50)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:10]]
    flat = X[keep].reshape(len(keep), -1)
    aug = ImageAugmenter(max_steps=4, n_checks=1, base=4, latent=4, check_samples=4,
                         image_shape=(8, 8), random_state=0, device="cpu")
    pipe = Pipeline([("aug", aug), ("clf", LogisticRegression(max_iter=200))]).fit(flat, y[keep])
    assert pipe.named_steps["aug"].generator_ is not None
    assert pipe.predict(flat).shape == (len(keep),)
    assert clone(aug).get_params() == aug.get_params()


def test_image_batch_resize_policy(fitted_detector, tmp_path):
    from genaug.image_batch import score_image_folder

    det, X = fitted_detector
    inc = tmp_path / "in"
    _png(inc / "big.png", np.asarray(Image.fromarray(X[0]).resize((20, 20))))
    _png(inc / "ok.png", X[1])
    kw = {"out": tmp_path / "out", "processed": tmp_path / "done",
          "quarantine": tmp_path / "q"}
    res = score_image_folder(inc, det, **kw)  # size=None policy: 20x20 is refused
    assert res.scored == ["ok.png"] and res.quarantined == ["big.png"]
    (tmp_path / "q" / "big.png").rename(inc / "big.png")
    res = score_image_folder(inc, det, resize=True, **kw)
    assert res.scored == ["big.png"] and not res.quarantined
    assert len(pd.read_parquet(res.output)) == 1


def test_image_evaluation_flow_cuts_the_rare_class_and_logs_parent_and_children(
        prefect_api, mlflow_store):
    import contextlib
    import io

    from mlflow import MlflowClient

    from pipelines.images import evaluate_image_augmentation_flow, rare_subset

    y = np.array([0] * 50 + [1] * 50)
    idx = rare_subset(y, 1, 0.1, random_state=0)
    assert (y[idx] == 0).sum() == 50 and (y[idx] == 1).sum() == 6  # round(0.1 * 50 / 0.9)
    X, y = halves(120, seed=4)
    np.savez(mlflow_store / "imgs.npz", X=X, y=y)
    with contextlib.redirect_stdout(io.StringIO()):
        res = evaluate_image_augmentation_flow(
            data=str(mlflow_store / "imgs.npz"), positive=1, rare_share=0.15,
            classifiers=["logreg"], n_splits=2,
            gan_params={"max_steps": 10, "n_checks": 1, "base": 4, "latent": 4,
                        "check_samples": 4, "device": "cpu"})
    assert res["positive"] == 1 and [r["arm"] for r in res["table"]] == ["none", "random", "gan"]
    c = MlflowClient()
    parent = c.get_run(res["run_id"])
    assert parent.data.params["kind"] == "images"
    children = c.search_runs([parent.info.experiment_id],
                             f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3 * 2
    n_pos = {int(r.data.metrics["n_synthetic"]) for r in children
             if r.data.params["arm"] == "none"}
    assert n_pos == {0}
    assert "plots/pr_auc_difference.png" in [a.path for a in c.list_artifacts(
        parent.info.run_id, "plots")]


def test_main_job_images_part_on_the_shipped_digits(prefect_api, mlflow_store, monkeypatch):
    """The main job's image part: the generic flows on the shipped digits sample register both
    image models, score the incoming digits (the planted defects stand out) and grow class 8."""
    import contextlib
    import io
    import shutil
    from pathlib import Path

    import pipelines.main as job

    repo = Path(__file__).resolve().parents[1]
    (mlflow_store / "data" / "sample").mkdir(parents=True)
    for name in ("digits_train.npz", "digits_incoming.npz"):
        shutil.copy(repo / "data" / "sample" / name, mlflow_store / "data" / "sample" / name)
    monkeypatch.setattr(job, "MAIN_GAN_STEPS", 60)  # the job's GAN budget, cut for the suite
    with contextlib.redirect_stdout(io.StringIO()):
        lines = job.images()
    text = "\n".join(lines)
    assert "genaug-image-detector v1" in text and "genaug-image-augmenter v1" in text
    scores = pd.read_parquet(mlflow_store / "data" / "scores" / "digits_incoming.scores.parquet")
    with np.load(mlflow_store / "data" / "sample" / "digits_incoming.npz") as z:
        defect, labels = z["defect"], z["y"]
    assert len(scores) == len(defect) == 200
    assert scores["label"].tolist() == [str(v) for v in labels]
    # the planted blotches rank above the clean digits
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(defect, scores["score"]) > 0.8
    out = np.load(mlflow_store / "data" / "augmented" / "digits_train.augmented.npz")
    counts = np.bincount(out["y"])
    assert counts[8] == counts.max() and out["is_synthetic"].sum() == counts.max() * 10 - 1474
