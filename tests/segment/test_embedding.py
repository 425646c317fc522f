import numpy as np
import pytest

from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes
from maskweb.segment.types import Embedding


def make() -> Embedding:
    rng = np.random.default_rng(0)
    return Embedding(model_id="m", image_size=(480, 854),
                     arrays={"image_embeddings": rng.standard_normal((1, 8, 4, 4)).astype(
                         np.float32),
                         "work": rng.integers(0, 255, (5, 7, 3)).astype(np.uint8)},
                     meta={"scale": 0.5, "pad": [1, 2]})


def test_float16_round_trip_is_close_and_comes_back_as_float32():
    emb = make()
    back = embedding_from_bytes(embedding_to_bytes(emb))
    assert back.model_id == "m" and back.image_size == (480, 854)
    assert back.meta == {"scale": 0.5, "pad": [1, 2]}
    assert back.arrays["image_embeddings"].dtype == np.float32
    assert np.allclose(back.arrays["image_embeddings"], emb.arrays["image_embeddings"],
                       atol=2e-3)
    assert (back.arrays["work"] == emb.arrays["work"]).all()  # integers stored exactly


def test_float32_round_trip_is_exact_and_float16_is_smaller():
    emb = make()
    b32 = embedding_to_bytes(emb, dtype="float32")
    assert (embedding_from_bytes(b32).arrays["image_embeddings"]
            == emb.arrays["image_embeddings"]).all()
    assert len(embedding_to_bytes(emb)) < len(b32)


def test_no_pickle_involved():
    data = embedding_to_bytes(make())
    assert b"\x80\x04" not in data[:20] and data.startswith(b"MWEMB")


@pytest.mark.parametrize("garbage", [b"", b"hello world", b"MWEMB\x01\x00\x00\x00\x05{}",
                                     b"MWEMB\x01\x00\x00\x00\x02[]"])
def test_garbage_is_a_clear_value_error(garbage):
    with pytest.raises(ValueError):
        embedding_from_bytes(garbage)


def test_truncated_blob_is_refused():
    data = embedding_to_bytes(make())
    with pytest.raises(ValueError, match="truncated|wrong size"):
        embedding_from_bytes(data[:-10])
    with pytest.raises(ValueError, match="trailing"):
        embedding_from_bytes(data + b"x")


def test_unknown_store_dtype_is_refused():
    with pytest.raises(ValueError):
        embedding_to_bytes(make(), dtype="int8")
