"""A bench's ``--model``: an installed model's id, or the folder of a model package.

A folder (one holding ``model.json`` or darktable-ai's ``config.json``, e.g. a package that
``models install --dest DIR`` put in ``DIR/<id>``) is used as it is: the bench loads it
directly, and a bench that starts the live stack points ``MASKWEB_MODELS_DIR`` at the
folder's parent, so the worker and the web process find it by its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskweb.segment.descriptor import load_descriptor
from maskweb.segment.types import Segmenter


@dataclass(frozen=True)
class ModelArg:
    model_id: str
    folder: Path | None  # None: an installed id, found on the usual search path

    @property
    def models_dir(self) -> Path | None:
        return self.folder.parent if self.folder is not None else None

    def load(self) -> Segmenter:
        """A fresh instance (a folder's model as its descriptor says, precision from the
        environment as the server's)."""
        if self.folder is None:
            from maskweb.segment.registry import build_model

            return build_model(self.model_id)
        from maskweb.segment.onnx_engine import OnnxSegmenter

        return OnnxSegmenter(load_descriptor(self.folder))


def parse_model_arg(text: str) -> ModelArg:
    """``text`` is a folder with a model descriptor, or else a model id."""
    path = Path(text).expanduser()
    if path.is_dir() and ((path / "model.json").is_file() or (path / "config.json").is_file()):
        folder = path.resolve()
        return ModelArg(load_descriptor(folder).id, folder)
    return ModelArg(text, None)
