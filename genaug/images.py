"""Reading image data (folders of PNG/JPEG, ``.npz``) with named errors, and image arrays.

Sources :func:`read_images` accepts:

* a folder with **one subfolder per class** (``digits/0/a.png``, ``digits/1/b.png``...): the
  label is the subfolder name;
* a folder of images and a **labels CSV** (``labels=...``) with a ``file`` column (paths relative
  to the folder) and a ``label`` column; a folder of images without subfolders or labels gives
  ``y = None`` (e.g. for anomaly detection);
* an **``.npz``** holding ``X`` (N x H x W, or N x H x W x C with C = 1 or 3) and optionally
  ``y`` and ``class_names``; it is read with ``allow_pickle=False``.

Files are decoded with pillow. Hidden files (``.name``) are ignored; any other file whose
extension is not ``.png``, ``.jpg`` or ``.jpeg`` raises
:class:`~genaug.errors.UnsupportedFormatError`; an empty file
:class:`~genaug.errors.EmptyInputError`; a file pillow cannot decode (truncated, damaged, text
named ``.png``) :class:`~genaug.errors.CorruptImageError`. Every error names the file.

**Colour** (``mode``): ``"auto"`` gives greyscale when every image is greyscale and RGB as soon
as one is in colour (the grey ones are repeated on three channels); ``"L"`` or ``"RGB"`` convert
every image. Alpha is dropped.

**Size** (``size``): ``None`` keeps the sizes, and every image must have the size of the first
one read (else :class:`~genaug.errors.ImageSizeError` naming the file, the size expected and the
size found); ``(height, width)`` resizes every image to that size (bilinear, with pillow's
antialiasing when shrinking).

Arrays: :class:`ImageSet.X` is ``uint8``, N x H x W (greyscale) or N x H x W x 3 (RGB).
:func:`to_unit_tensor_array` turns such arrays (or floats in [0, 1]) into the N x C x H x W
float32 array in [0, 1] the image models use.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import (
    CorruptFileError,
    CorruptImageError,
    EmptyInputError,
    ImageShapeError,
    ImageSizeError,
    LabelsFileError,
    UnsupportedFormatError,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
Mode = Literal["auto", "L", "RGB"]


@dataclass
class ImageSet:
    """Images read by :func:`read_images`: pixels, labels (or None), source files, classes."""

    X: np.ndarray
    y: np.ndarray | None
    files: list[str]
    class_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.X)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return (1 if self.X.ndim == 3 else self.X.shape[3], self.X.shape[1], self.X.shape[2])


def _check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size)):
        raise ValueError(f"size must be None or (height, width) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def read_image(
    path: str | os.PathLike, *, mode: Mode = "auto", size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode one PNG/JPEG file to ``uint8`` H x W (grey) or H x W x 3 (RGB).

    With ``mode="auto"`` the image keeps its own kind (grey or colour). Raises the named errors
    of the module docstring.
    """
    path = Path(path)
    file = str(path)
    size = _check_size(size)
    if mode not in ("auto", "L", "RGB"):
        raise ValueError(f"mode must be 'auto', 'L' or 'RGB', got {mode!r}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UnsupportedFormatError("not an image file type genaug reads", file=file,
                                     expected=f"one of {sorted(IMAGE_SUFFIXES)}",
                                     found=path.suffix or "no extension")
    if not path.is_file():
        raise FileNotFoundError(f"image file {file!r} does not exist")
    if path.stat().st_size == 0:
        raise EmptyInputError("the image file is empty", file=file, expected="an image",
                              found="0 bytes")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated data fails here, not later
            img = _convert(img, mode)
            if size is not None and (img.height, img.width) != size:
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as e:
        raise CorruptImageError("cannot decode the image", file=file,
                                expected=f"a valid {path.suffix.lstrip('.').upper()} image",
                                found=f"{type(e).__name__}: {str(e)[:160]}") from None
    return arr


def _convert(img: Image.Image, mode: Mode) -> Image.Image:
    if mode != "auto":
        return img.convert(mode)
    grey = img.mode in ("1", "L", "LA", "I", "I;16", "F") or (
        img.mode == "P" and _palette_is_grey(img))
    if img.mode in ("I", "I;16", "F"):
        # 16-bit / float greyscale: scale the observed range to 0..255
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.round(a).astype(np.uint8), mode="L")
    return img.convert("L" if grey else "RGB")


def _palette_is_grey(img: Image.Image) -> bool:
    rgb = np.asarray(img.convert("RGB"))
    return bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))


def read_images(
    path: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    mode: Mode = "auto",
) -> ImageSet:
    """Read a folder of images (class subfolders or a labels CSV) or an ``.npz`` file.

    See the module docstring for the layouts, the colour and size policies and the errors.
    """
    path = Path(path)
    size = _check_size(size)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _read_npz(path, size, mode)
    if path.is_file():
        raise UnsupportedFormatError("not an image source", file=str(path),
                                     expected="a folder of images or an .npz file",
                                     found=path.suffix or "no extension")
    if not path.is_dir():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    if labels is not None:
        files, y = _read_labels(path, Path(labels))
        class_names = None
    else:
        files, y, class_names = _scan_folder(path)
    arrays = [read_image(f, mode=mode, size=size) for f in files]
    X = _stack(arrays, files, mode)
    return ImageSet(X, y, [str(f) for f in files], class_names)


def is_image_source(path: str | os.PathLike) -> bool:
    """True for what :func:`read_images` reads (a folder or an ``.npz``) and for a single image
    file: the generic flows send these to the image models."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES | {".npz"}


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _scan_folder(folder: Path) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    entries = sorted(p for p in folder.iterdir() if _visible(p))
    subdirs = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if p.is_file()]
    if subdirs:
        if loose:
            raise UnsupportedFormatError(
                "a class-folder layout has a file outside the class subfolders",
                file=str(loose[0]), expected="only subfolders (one per class)",
                found=f"file {loose[0].name!r}")
        files, labels = [], []
        for d in subdirs:
            inside = sorted(p for p in d.rglob("*") if p.is_file()
                            and not any(q.startswith(".") for q in p.relative_to(d).parts))
            files += inside
            labels += [d.name] * len(inside)
        if not files:
            raise EmptyInputError("no images in the class subfolders", file=str(folder),
                                  expected="at least 1 image", found="0 files")
        return files, np.asarray(labels), [d.name for d in subdirs]
    if not loose:
        raise EmptyInputError("the folder holds no images", file=str(folder),
                              expected="at least 1 image", found="0 files")
    return loose, None, None


def _read_labels(folder: Path, labels: Path) -> tuple[list[Path], np.ndarray]:
    file = str(labels)
    if not labels.is_file():
        raise FileNotFoundError(f"labels file {file!r} does not exist")
    try:
        with open(labels, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as e:
        raise LabelsFileError("cannot parse the labels CSV", file=file, expected="a UTF-8 CSV",
                              found=str(e)[:160]) from None
    if not rows:
        raise EmptyInputError("the labels file has no rows", file=file,
                              expected="a header 'file,label' and 1 row or more", found="0 rows")
    missing = [c for c in ("file", "label") if c not in rows[0]]
    if missing:
        raise LabelsFileError("the labels CSV lacks a column", file=file, column=missing[0],
                              expected="columns 'file' and 'label'",
                              found=f"columns {list(rows[0])}")
    files, y = [], []
    for i, r in enumerate(rows):
        name, lab = r["file"], r["label"]
        if not name or lab is None or lab == "":
            raise LabelsFileError("a row has an empty file name or label", file=file,
                                  column="file" if not name else "label",
                                  expected="a file name and a label", found=f"row {i + 2}: {r}")
        f = folder / name
        if not f.is_file():
            raise LabelsFileError("the labels CSV names an image that does not exist", file=file,
                                  column="file", expected=f"a file in {str(folder)!r}",
                                  found=repr(name))
        files.append(f)
        y.append(lab)
    y_arr = np.asarray(y)
    try:  # integer class ids stay integers
        y_arr = y_arr.astype(np.int64)
    except ValueError:
        pass
    return files, y_arr


def _stack(arrays: list[np.ndarray], files: list[Path], mode: Mode) -> np.ndarray:
    first = arrays[0].shape[:2]
    for a, f in zip(arrays, files):
        if a.shape[:2] != first:
            raise ImageSizeError(
                "image size differs from the first image's (pass size=(h, w) to resize)",
                file=str(f), expected=f"{first[0]}x{first[1]} (as {files[0].name})",
                found=f"{a.shape[0]}x{a.shape[1]}")
    if mode == "auto" and any(a.ndim == 3 for a in arrays):
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    return np.stack(arrays)


def _read_npz(path: Path, size: tuple[int, int] | None, mode: Mode) -> ImageSet:
    file = str(path)
    if path.stat().st_size == 0:
        raise EmptyInputError("the file is empty", file=file, expected="an .npz", found="0 bytes")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as e:  # object arrays need pickle: refused
        raise CorruptFileError("the .npz holds object arrays (pickled); refused", file=file,
                               expected="numeric arrays", found=str(e)[:160]) from None
    except (OSError, EOFError) as e:
        raise CorruptFileError("cannot read the .npz", file=file, expected="a NumPy .npz",
                               found=f"{type(e).__name__}: {str(e)[:160]}") from None
    if "X" not in data:
        raise ImageShapeError("the .npz has no array 'X'", file=file, column="X",
                              expected="arrays 'X' (and optionally 'y')",
                              found=f"arrays {sorted(data)}")
    X = check_image_array(data["X"], file=file)
    y = data.get("y")
    if y is not None:
        y = np.asarray(y).ravel()
        if len(y) != len(X):
            raise ImageShapeError("labels do not match the images", file=file, column="y",
                                  expected=f"{len(X)} labels", found=f"{len(y)}")
    names = data.get("class_names")
    X = _as_uint8(X, file)
    if X.ndim == 4 and X.shape[3] == 1:
        X = X[..., 0]
    if mode == "L" and X.ndim == 4:
        X = np.stack([np.asarray(Image.fromarray(a, "RGB").convert("L")) for a in X])
    elif mode == "RGB" and X.ndim == 3:
        X = np.repeat(X[..., None], 3, axis=3)
    if size is not None and X.shape[1:3] != size:
        X = np.stack([np.asarray(Image.fromarray(a).resize((size[1], size[0]),
                                                           Image.Resampling.BILINEAR))
                      for a in X])
    files = [f"{file}[{i}]" for i in range(len(X))]
    return ImageSet(X, y, files, None if names is None else [str(n) for n in names])


def _as_uint8(X: np.ndarray, file: str | None) -> np.ndarray:
    if X.dtype == np.uint8:
        return X
    if np.issubdtype(X.dtype, np.floating) and X.size and float(np.nanmax(X)) <= 1.0:
        return np.round(np.clip(X, 0, 1) * 255).astype(np.uint8)
    if np.issubdtype(X.dtype, np.number) and X.size and 0 <= X.min() and X.max() <= 255:
        return np.round(X).astype(np.uint8)
    raise ImageShapeError("pixel values out of range", file=file,
                          expected="uint8 0..255 or floats in [0, 1]",
                          found=f"{X.dtype} in [{X.min()}, {X.max()}]")


def check_image_array(X: Any, *, file: str | None = None) -> np.ndarray:
    """Check an image batch: N x H x W or N x H x W x C (C = 1 or 3), numeric, finite, N > 0."""
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ImageShapeError("image array is not numeric", file=file, expected="numbers",
                              found=str(X.dtype))
    if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[3] not in (1, 3)):
        raise ImageShapeError("wrong image array shape", file=file,
                              expected="N x H x W or N x H x W x C with C in (1, 3)",
                              found=f"shape {X.shape}")
    if len(X) == 0:
        raise EmptyInputError("no images", file=file, expected="at least 1 image", found="0")
    if np.issubdtype(X.dtype, np.floating) and not np.all(np.isfinite(X)):
        raise ImageShapeError("image array holds NaN or inf", file=file,
                              expected="finite pixel values", found="NaN/inf")
    return X


def to_unit_array(X: Any, *, file: str | None = None) -> np.ndarray:
    """Images as float32 N x C x H x W in [0, 1].

    ``uint8`` (and other integer) arrays are divided by 255; float arrays must already be in
    [0, 1]. Accepts N x H x W, N x H x W x C (C = 1 or 3) and :class:`ImageSet`.
    """
    if isinstance(X, ImageSet):
        X = X.X
    X = check_image_array(X, file=file)
    if np.issubdtype(X.dtype, np.integer):
        if X.min() < 0 or X.max() > 255:
            raise ImageShapeError("integer pixels out of range", file=file,
                                  expected="0..255", found=f"[{X.min()}, {X.max()}]")
        out = X.astype(np.float32) / 255.0
    else:
        if X.min() < 0 or X.max() > 1:
            raise ImageShapeError("float pixels out of range", file=file, expected="[0, 1]",
                                  found=f"[{X.min():.4g}, {X.max():.4g}]")
        out = X.astype(np.float32)
    if out.ndim == 3:
        return out[:, None]
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def from_unit_array(X: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_unit_array` up to rounding: ``uint8`` N x H x W (x 3)."""
    a = np.round(np.clip(X, 0.0, 1.0) * 255.0).astype(np.uint8)
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)
