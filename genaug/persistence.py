"""Model folders without pickle: ``config.json`` plus ``weights.pt`` (tensors only).

``weights.pt`` is a flat ``{name: tensor}`` dict written with :func:`torch.save` and read with
``torch.load(..., weights_only=True)``, which refuses any pickled object that is not a tensor.
``config.json`` holds the format name and version, the estimator's parameters, the fitted
schema, encoder and threshold, and the SHA-256 of ``weights.pt`` so a swapped or truncated
weights file is caught before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ModelFormatError
from .io import default_mode

CONFIG = "config.json"
WEIGHTS = "weights.pt"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_model_folder(
    folder: str | os.PathLike, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    """Write config and tensors into ``folder`` atomically (a temp folder, then a rename)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not (folder / CONFIG).is_file():
        raise FileExistsError(
            f"{folder} exists and is not a genaug model folder; refusing to replace it"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        torch.save(cpu, tmp / WEIGHTS)
        config = dict(config, weights_sha256=_sha256(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(_jsonable(config), indent=1, sort_keys=True))
        os.chmod(tmp, default_mode(0o777))  # mkdtemp makes 0700: give normal modes
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_model_folder(
    folder: str | os.PathLike, fmt: str, supported_versions: set[int]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a folder written by :func:`write_model_folder`."""
    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG, folder / WEIGHTS
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ModelFormatError(f"model folder {str(folder)!r} has no {p.name}")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{cfg_path}: not valid JSON ({e})") from None
    if config.get("format") != fmt:
        raise ModelFormatError(
            f"{cfg_path}: holds a {config.get('format')!r} model, expected {fmt!r}"
        )
    version = config.get("format_version")
    if version not in supported_versions:
        raise ModelFormatError(
            f"{cfg_path}: format version {version!r} is not supported by this genaug "
            f"(supported: {sorted(supported_versions)}); retrain or upgrade genaug"
        )
    if config.get("weights_sha256") != _sha256(w_path):
        raise ModelFormatError(
            f"{w_path}: checksum does not match config.json: the weights were changed, "
            "truncated or come from another model"
        )
    try:
        tensors = torch.load(w_path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise ModelFormatError(
            f"{w_path}: refused to load ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "only plain tensors are accepted"
        ) from None
    if not isinstance(tensors, dict) or not all(
        isinstance(v, torch.Tensor) for v in tensors.values()
    ):
        raise ModelFormatError(f"{w_path}: expected a dict of tensors")
    return config, tensors
