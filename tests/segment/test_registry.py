import json

import pytest

from maskweb.segment import registry
from maskweb.segment.classical import GrabCutSegmenter
from maskweb.segment.descriptor import DescriptorError, load_descriptor
from maskweb.segment.interactive import InteractiveSegmenter


def write_model(base, model_id, rank=None, family="sam", files=("encoder.onnx", "decoder.onnx"),
                **extra):
    folder = base / model_id
    folder.mkdir(parents=True)
    desc = {"id": model_id, "name": model_id.title(), "family": family, "input_size": 256,
            "resize": "pad", "normalization": "minmax", "encoder": "encoder.onnx",
            "decoder": "decoder.onnx", "licence": "Apache-2.0", "source": "test", **extra}
    if rank is not None:
        desc["offline_default_rank"] = rank
    (folder / "model.json").write_text(json.dumps(desc))
    for f in files:
        (folder / f).write_bytes(b"onnx")
    return folder


@pytest.fixture
def search(tmp_path, monkeypatch):
    """An isolated search path: no bundled models, a user dir, no darktable dir."""
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setattr(registry, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(registry, "DARKTABLE_DIR", tmp_path / "no-darktable")
    monkeypatch.setenv("MASKWEB_MODELS_DIR", str(user))
    monkeypatch.delenv("MASKWEB_DEFAULT_MODEL", raising=False)
    registry.forget_loaded()
    yield user
    registry.forget_loaded()


def test_grabcut_is_always_listed_and_default_when_nothing_is_installed(search):
    models = registry.list_models()
    assert [m.id for m in models] == ["grabcut"]
    assert models[0].is_default and models[0].family == "classical" and models[0].path is None
    assert registry.default_model_id() == "grabcut"


def test_installed_models_are_listed_and_highest_offline_rank_is_default(search):
    write_model(search, "low", rank=1)
    write_model(search, "high", rank=5)
    write_model(search, "unranked")
    models = {m.id: m for m in registry.list_models()}
    assert set(models) == {"grabcut", "low", "high", "unranked"}
    assert registry.default_model_id() == "high"
    assert models["high"].is_default and not models["grabcut"].is_default
    assert models["low"].licence == "Apache-2.0" and models["low"].path == search / "low"


def test_env_default_wins_when_installed_and_is_ignored_when_not(search, monkeypatch):
    write_model(search, "high", rank=5)
    write_model(search, "mine")
    monkeypatch.setenv("MASKWEB_DEFAULT_MODEL", "mine")
    assert registry.default_model_id() == "mine"
    monkeypatch.setenv("MASKWEB_DEFAULT_MODEL", "grabcut")
    assert registry.default_model_id() == "grabcut"
    monkeypatch.setenv("MASKWEB_DEFAULT_MODEL", "not-installed")
    assert registry.default_model_id() == "high"


def test_broken_model_folders_are_skipped(search):
    write_model(search, "nofiles", files=())
    write_model(search, "badfamily", family="yolo")
    (search / "garbage").mkdir()
    (search / "garbage" / "model.json").write_text("{not json")
    assert [m.id for m in registry.list_models()] == ["grabcut"]


def test_bundled_model_wins_over_a_user_model_with_the_same_id(search, tmp_path):
    write_model(tmp_path / "repo" / "models", "same", source_tag="bundled")
    write_model(search, "same")
    (m,) = [m for m in registry.list_models() if m.id == "same"]
    assert m.path == tmp_path / "repo" / "models" / "same"


def test_darktable_folder_is_used_as_it_is(search, tmp_path, monkeypatch):
    dt = tmp_path / "darktable"
    folder = dt / "mask-object-sam21-tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"id": "mask-object-sam21-tiny", "name": "mask object sam 2.1 tiny", "task": "mask",
         "backend": "onnx", "version": "1.0"}))
    (folder / "encoder.onnx").write_bytes(b"x")
    (folder / "decoder.onnx").write_bytes(b"x")
    monkeypatch.setattr(registry, "DARKTABLE_DIR", dt)
    models = {m.id: m for m in registry.list_models()}
    assert models["mask-object-sam21-tiny"].family == "sam2"
    desc = load_descriptor(folder)
    assert desc.input_size == 1024


def test_non_mask_darktable_package_is_not_a_model(tmp_path):
    folder = tmp_path / "denoise-nafnet"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"id": "denoise-nafnet", "task": "denoise"}))
    with pytest.raises(DescriptorError, match="not a mask model"):
        load_descriptor(folder)


def test_load_model_caches_one_instance_and_refuses_unknown_ids(search):
    a = registry.load_model("grabcut")
    # Every model is served behind the interactive wrapper (maskweb.segment.interactive).
    assert isinstance(a, InteractiveSegmenter) and isinstance(a.inner, GrabCutSegmenter)
    assert registry.load_model("grabcut") is a
    with pytest.raises(registry.UnknownModel):
        registry.load_model("nope")
    with pytest.raises(KeyError):  # UnknownModel is a KeyError for callers that expect one
        registry.load_model("nope")
