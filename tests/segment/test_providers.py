import pytest

from maskweb.segment.providers import CPU, CUDA, choose_providers, make_session, thread_count
from tests.segment import onnx_fixtures as fx


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("MASKWEB_ONNX_PROVIDER", raising=False)
    monkeypatch.delenv("MASKWEB_ONNX_THREADS", raising=False)


def test_encoder_uses_cuda_when_onnxruntime_gpu_offers_it():
    assert choose_providers([CUDA, CPU], "encoder") == [CUDA, CPU]


def test_cpu_only_build_uses_the_cpu():
    assert choose_providers(["AzureExecutionProvider", CPU], "encoder") == [CPU]


def test_decoder_stays_on_the_cpu_unless_cuda_is_forced():
    assert choose_providers([CUDA, CPU], "decoder") == [CPU]
    assert choose_providers([CUDA, CPU], "decoder", forced="cuda") == [CUDA, CPU]


def test_env_can_force_the_cpu_and_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("MASKWEB_ONNX_PROVIDER", "cpu")
    assert choose_providers([CUDA, CPU], "encoder") == [CPU]
    monkeypatch.setenv("MASKWEB_ONNX_PROVIDER", "tpu")
    with pytest.raises(ValueError, match="MASKWEB_ONNX_PROVIDER"):
        choose_providers([CUDA, CPU], "encoder")


def test_thread_counts(monkeypatch):
    assert thread_count("decoder") == 1
    assert thread_count("encoder") >= thread_count("decoder")
    monkeypatch.setenv("MASKWEB_ONNX_THREADS", "3")
    assert thread_count("encoder") == 3
    monkeypatch.setenv("MASKWEB_ONNX_THREADS", "many")
    with pytest.raises(ValueError):
        thread_count("encoder")


def test_session_starts_on_this_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKWEB_ONNX_THREADS", "1")
    path = fx.encoder(tmp_path / "e.onnx", 64, {"image_embeddings": [1, 4, 8, 8]})
    session = make_session(path, "encoder")
    assert session.get_providers()[-1] == CPU
    assert [i.name for i in session.get_inputs()] == ["image"]
