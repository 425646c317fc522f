from bench.model_arg import parse_model_arg
from maskweb.segment.onnx_engine import OnnxSegmenter
from tests.segment import onnx_fixtures as fx


def test_a_package_folder_is_loaded_as_it_is_and_its_parent_is_the_models_dir(tmp_path):
    folder = fx.sam2_package(tmp_path / "installed" / "mask-object-sam21-small",
                             model_id="mask-object-sam21-small")
    arg = parse_model_arg(str(folder))
    assert arg.model_id == "mask-object-sam21-small"
    assert arg.models_dir == (tmp_path / "installed").resolve()
    model = arg.load()
    assert isinstance(model, OnnxSegmenter) and model.descriptor.folder == folder.resolve()


def test_anything_else_is_an_installed_models_id(tmp_path):
    arg = parse_model_arg("litemedsam-photo")
    assert (arg.model_id, arg.folder, arg.models_dir) == ("litemedsam-photo", None, None)
    # A folder without a descriptor is not a package: its name is taken as an id.
    (tmp_path / "empty").mkdir()
    assert parse_model_arg(str(tmp_path / "empty")).folder is None
