"""Which models exist on this machine, which is the default, and one loaded instance of each.

Search path, first folder wins when two hold the same id:
1. ``<repo root>/models``: bundled with the code (committed);
2. ``$MASKWEB_MODELS_DIR`` (default ``~/.local/share/maskweb/models``): where
   ``models install`` writes;
3. ``~/.local/share/darktable/models`` when it exists: a darktable installation's models,
   used as they are.
Each model is a sub-folder with a ``model.json`` (or darktable-ai's ``config.json``); see
:mod:`maskweb.segment.descriptor`. The classical ``grabcut`` engine is always there.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from maskweb.segment.descriptor import DescriptorError, ModelDescriptor, load_descriptor
from maskweb.segment.types import Segmenter

log = logging.getLogger(__name__)

GRABCUT_ID = "grabcut"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_USER_DIR = Path("~/.local/share/maskweb/models")
DARKTABLE_DIR = Path("~/.local/share/darktable/models")


class UnknownModel(KeyError):
    """No installed model has this id."""


@dataclass
class ModelInfo:
    id: str
    name: str
    family: str  # "classical" | "sam" | "sam2" | "segnext"
    licence: str
    source: str
    path: Path | None
    is_default: bool
    description: str = ""
    # What the model does well ("click", "box", "stroke"); see descriptor.PROMPT_KINDS.
    prompts: tuple[str, ...] = ("click", "box", "stroke")


def user_models_dir() -> Path:
    """Where ``models install`` puts packages (``$MASKWEB_MODELS_DIR`` or the default)."""
    env = os.environ.get("MASKWEB_MODELS_DIR", "").strip()
    return Path(env).expanduser() if env else DEFAULT_USER_DIR.expanduser()


def search_path() -> list[Path]:
    dirs = [REPO_ROOT / "models", user_models_dir()]
    darktable = DARKTABLE_DIR.expanduser()
    if darktable.is_dir():
        dirs.append(darktable)
    return dirs


def discover() -> dict[str, ModelDescriptor]:
    """Every valid descriptor on the search path, by id. Invalid folders are logged, skipped."""
    found: dict[str, ModelDescriptor] = {}
    for base in search_path():
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            if not ((folder / "model.json").is_file() or (folder / "config.json").is_file()):
                continue
            try:
                desc = load_descriptor(folder)
            except DescriptorError as exc:
                log.debug("skipping model folder: %s", exc)
                continue
            found.setdefault(desc.id, desc)
    return found


def default_model_id(found: dict[str, ModelDescriptor] | None = None) -> str:
    """``$MASKWEB_DEFAULT_MODEL`` if installed, else the highest ``offline_default_rank``
    above 0, else ``grabcut``."""
    found = discover() if found is None else found
    wanted = os.environ.get("MASKWEB_DEFAULT_MODEL", "").strip()
    if wanted and (wanted == GRABCUT_ID or wanted in found):
        return wanted
    if wanted:
        log.warning("MASKWEB_DEFAULT_MODEL=%r is not installed; using the best offline model",
                    wanted)
    best_id, best_rank = GRABCUT_ID, 0
    for desc in found.values():
        if desc.offline_default_rank > best_rank:
            best_id, best_rank = desc.id, desc.offline_default_rank
    return best_id


def list_models() -> list[ModelInfo]:
    """The built-in ``grabcut`` followed by every installed model, default flagged."""
    found = discover()
    default = default_model_id(found)
    models = [ModelInfo(id=GRABCUT_ID, name="Classical (OpenCV grabCut)", family="classical",
                        licence="Apache-2.0 (OpenCV)", source="built-in", path=None,
                        is_default=default == GRABCUT_ID,
                        description="Works offline with no model files; colour-based.")]
    for desc in found.values():
        models.append(ModelInfo(id=desc.id, name=desc.name, family=desc.family,
                                licence=desc.licence, source=desc.source, path=desc.folder,
                                is_default=default == desc.id,
                                description=desc.description, prompts=desc.prompts))
    return models


_lock = threading.Lock()
_loaded: dict[str, Segmenter] = {}


def build_model(model_id: str) -> Segmenter:
    """A fresh (uncached) model instance; UnknownModel for an id that is not installed.

    Every model goes through the interactive wrapper (clicks that act where they are
    placed; :mod:`maskweb.segment.interactive`), unless MASKWEB_ENGINE_VARIANT=plain.
    """
    from maskweb.segment.interactive import wrap

    return wrap(build_bare_model(model_id))


def build_bare_model(model_id: str) -> Segmenter:
    """The model as it is, without the interactive wrapper."""
    if model_id == GRABCUT_ID:
        from maskweb.segment.classical import GrabCutSegmenter

        return GrabCutSegmenter()
    found = discover()
    if model_id not in found:
        raise UnknownModel(model_id)
    from maskweb.segment.onnx_engine import OnnxSegmenter

    return OnnxSegmenter(found[model_id])


def load_model(model_id: str) -> Segmenter:
    """The process's one instance of ``model_id`` (built on first use, thread-safe)."""
    with _lock:
        model = _loaded.get(model_id)
        if model is None:
            model = build_model(model_id)
            _loaded[model_id] = model
        return model


def forget_loaded() -> None:
    """Drop cached instances (tests; after installing a new version of a model)."""
    with _lock:
        _loaded.clear()
