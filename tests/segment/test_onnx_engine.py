import json

import numpy as np
import pytest

from maskweb.segment.descriptor import DescriptorError, load_descriptor
from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes
from maskweb.segment.onnx_engine import OnnxSegmenter, preprocess
from maskweb.segment.types import Box, Point, Prompts
from tests.segment import onnx_fixtures as fx
from tests.segment.synthetic import disc_mask, iou, textured_background

H, W = 240, 360  # landscape: "pad" leaves the bottom of the input frame empty


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("MASKWEB_ONNX_THREADS", "1")


def engine_for(folder):
    return OnnxSegmenter(load_descriptor(folder))


def test_sam_click_gives_the_highest_scoring_disc_at_the_click(tmp_path):
    # Radii are in input-frame pixels (256 for a 360 px wide photo): 40 -> 56.25 px here.
    seg = engine_for(fx.sam_model(tmp_path / "m"))
    emb = seg.encode(textured_background())
    pred = seg.decode(emb, Prompts(points=(Point(100.0, 150.0),)))
    scale = 360 / 256
    assert [round(c.score, 2) for c in pred.candidates] == [0.9, 0.7, 0.5]
    assert pred.best.mask.shape == (H, W) and pred.best.mask.dtype == bool
    assert iou(pred.best.mask, disc_mask(100.0, 150.0, 40 * scale)) > 0.97
    assert iou(pred.candidates[1].mask, disc_mask(100.0, 150.0, 10 * scale)) > 0.9


def test_sam_stretch_mode_maps_each_axis_separately(tmp_path):
    seg = engine_for(fx.sam_model(tmp_path / "m", resize="stretch", radii=(30.0,),
                                  scores=(0.8,)))
    emb = seg.encode(textured_background())
    mask = seg.decode(emb, Prompts(points=(Point(200.0, 60.0),))).best.mask
    # A disc in the square input frame is an ellipse in the photo: 30 * 360/256 wide,
    # 30 * 240/256 tall.
    yy, xx = np.mgrid[0:H, 0:W]
    ex, ey = (xx + 0.5 - 200) / (30 * W / 256), (yy + 0.5 - 60) / (30 * H / 256)
    ellipse = ex**2 + ey**2 <= 1
    assert iou(mask, ellipse) > 0.95


def test_sam_feedback_is_the_low_res_logits_and_is_used(tmp_path):
    # Disc radius 20 input px = 28 photo px. The fixture's decoder takes the union of its disc
    # and the fed-back logits, so the first disc must reappear only when previous is passed.
    seg = engine_for(fx.sam_model(tmp_path / "m", radii=(20.0,), scores=(0.9,)))
    emb = seg.encode(textured_background())
    first = seg.decode(emb, Prompts(points=(Point(80.0, 80.0),)))
    assert first.feedback is not None and first.feedback.shape == (256, 256)
    assert first.best.mask[80, 55] and not first.best.mask[80, 115]
    moved = Prompts(points=(Point(120.0, 80.0),))  # overlaps the first disc
    with_previous = seg.decode(emb, moved, previous=first).best.mask
    without = seg.decode(emb, moved).best.mask
    assert with_previous[80, 55] and with_previous[80, 145]
    assert not without[80, 55] and without[80, 145]


def test_sam_box_prompt_sends_corners_and_crops(tmp_path):
    seg = engine_for(fx.sam_model(tmp_path / "m", radii=(200.0,), scores=(0.9,)))
    emb = seg.encode(textured_background())
    # The fixture ignores box corners (labels 2/3), but the engine crops to the box.
    pred = seg.decode(emb, Prompts(points=(Point(150.0, 120.0),), box=Box(100, 80, 200, 160)))
    m = pred.best.mask
    assert m[80:160, 100:200].all() and not m[:80].any() and not m[:, 200:].any()


def test_sam2_darktable_package_decodes_with_high_res_features(tmp_path):
    seg = engine_for(fx.sam2_package(tmp_path / "mask-object-sam21-tiny"))
    assert seg.descriptor.input_size == 1024 and seg.descriptor.resize == "pad"
    emb = seg.encode(textured_background())
    assert set(emb.arrays) >= {"high_res_feats_0", "high_res_feats_1", "image_embed"}
    pred = seg.decode(emb, Prompts(points=(Point(180.0, 100.0),)))
    scale = 360 / 1024
    assert pred.best.score == pytest.approx(0.95)
    assert iou(pred.best.mask, disc_mask(180.0, 100.0, 80 * scale)) > 0.95


def test_segnext_uses_full_resolution_feedback_and_turns_a_box_into_a_click(tmp_path):
    seg = engine_for(fx.segnext_package(tmp_path / "mask-object-segnext-b2hq", radius=60.0))
    emb = seg.encode(textured_background())
    first = seg.decode(emb, Prompts(points=(Point(90.0, 90.0),)))
    scale = 360 / 1024
    assert iou(first.best.mask, disc_mask(90.0, 90.0, 60 * scale)) > 0.9
    assert first.feedback is not None and first.feedback.shape == (1024, 1024)
    assert first.feedback.min() >= 0.0 and first.feedback.max() <= 1.0  # a probability
    # A click overlapping the first disc: its far side (x=72) is there only with feedback.
    moved = Prompts(points=(Point(120.0, 90.0),))
    assert seg.decode(emb, moved, previous=first).best.mask[90, 72]
    assert not seg.decode(emb, moved).best.mask[90, 72]
    boxed = seg.decode(emb, Prompts(box=Box(220, 120, 280, 180)))
    assert boxed.best.mask[150, 250] and not boxed.best.mask[:, :220].any()


def test_embedding_round_trip_through_float16_keeps_the_mask(tmp_path):
    seg = engine_for(fx.sam2_package(tmp_path / "mask-object-sam21-tiny"))
    emb = seg.encode(textured_background())
    back = embedding_from_bytes(embedding_to_bytes(emb, "float16"))
    p = Prompts(points=(Point(180.0, 100.0),))
    assert iou(seg.decode(back, p).best.mask, seg.decode(emb, p).best.mask) > 0.99


@pytest.mark.parametrize("refine", ["guided", "grabcut"])
def test_refinement_keeps_a_well_placed_mask(tmp_path, refine):
    # The photo has a red disc exactly where the fixture draws its disc: refinement along the
    # photo's edges must not damage it.
    from tests.segment.synthetic import paint
    scale = 360 / 256
    truth = disc_mask(180.0, 120.0, 40 * scale)
    photo = paint(textured_background(), truth, (220, 40, 40))
    seg = engine_for(fx.sam_model(tmp_path / "m", radii=(40.0,), scores=(0.9,), refine=refine))
    emb = seg.encode(photo)
    assert "_guide" in emb.arrays
    assert iou(seg.decode(emb, Prompts(points=(Point(180.0, 120.0),))).best.mask, truth) > 0.95


def test_preprocess_pads_bottom_right_with_zero_after_normalisation():
    img = np.full((100, 200, 3), 200, np.uint8)
    img[0, 0] = 0
    t, sx, sy = preprocess(img, 64, "pad", "minmax")
    assert t.shape == (1, 3, 64, 64) and sx == sy == pytest.approx(64 / 200)
    assert t[0, :, :32].max() == pytest.approx(1.0) and (t[0, :, 32:] == 0).all()
    t2, _, _ = preprocess(img, 64, "pad", {"mean": [200, 200, 200], "std": [10, 10, 10]})
    assert np.allclose(t2[0, :, 5:30, 5:60], 0.0) and (t2[0, :, 32:] == 0).all()


def test_wrong_model_embedding_is_refused(tmp_path):
    seg = engine_for(fx.sam_model(tmp_path / "m"))
    emb = seg.encode(textured_background())
    emb.model_id = "grabcut"
    with pytest.raises(ValueError):
        seg.decode(emb, Prompts(points=(Point(1, 1),)))


def test_full_size_export_with_orig_im_size_is_used_as_is(tmp_path):
    folder = fx.sam_model(tmp_path / "m", radii=(30.0,), scores=(0.8,))
    fx.sam_full_size_decoder(folder / "decoder.onnx", 256, 30.0)
    seg = engine_for(folder)
    emb = seg.encode(textured_background())
    pred = seg.decode(emb, Prompts(points=(Point(250.0, 100.0),)))
    assert pred.best.score == pytest.approx(0.8)
    assert iou(pred.best.mask, disc_mask(250.0, 100.0, 30 * 360 / 256)) > 0.97
    assert pred.feedback is None  # no low-res output to feed back


@pytest.mark.parametrize("make", [
    lambda d: fx.sam_model(d), lambda d: fx.sam2_package(d), lambda d: fx.segnext_package(d),
    lambda d: fx.sam_full_size_decoder(fx.sam_model(d) / "decoder.onnx", 256, 30.0).parent,
], ids=["sam", "sam2", "segnext", "sam-orig-im-size"])
def test_warm_up_runs_the_decoder_without_an_embedding_and_never_starts_the_encoder(tmp_path,
                                                                                    make):
    seg = engine_for(make(tmp_path / "m"))
    seg.warm_up()
    assert seg._decoder is not None and seg._encoder is None
    emb = seg.encode(textured_background())  # decoding afterwards is unaffected
    assert seg.decode(emb, Prompts(points=(Point(100.0, 150.0),))).best.mask[150, 100]


def test_encoder_warm_up_never_starts_the_decoder(tmp_path):
    seg = engine_for(fx.sam_model(tmp_path / "m"))
    seg.warm_up("encoder")
    assert seg._encoder is not None and seg._decoder is None


def model_with_an_int8_decoder(folder):
    """The "int8" file is a fixture decoder drawing a larger disc, so the mask tells which
    of the two files decoded."""
    fx.sam_model(folder, radii=(20.0, 40.0, 10.0))
    fx.sam_decoder(folder / "decoder.int8.onnx", fx.SAM_EMBED, 256, [20.0, 60.0, 10.0],
                   [0.5, 0.9, 0.7])
    desc = json.loads((folder / "model.json").read_text())
    fx.write_descriptor(folder, **desc, decoder_int8="decoder.int8.onnx")
    return folder


def best_radius_px(seg):
    emb = seg.encode(textured_background())
    mask = seg.decode(emb, Prompts(points=(Point(100.0, 150.0),))).best.mask
    return float(np.sqrt(mask.sum() / np.pi)) / (360 / 256)  # in input-frame pixels


def test_the_cpu_decodes_with_the_int8_file_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKWEB_DECODER_PRECISION", raising=False)
    seg = engine_for(model_with_an_int8_decoder(tmp_path / "m"))
    assert seg.decoder_file().name == "decoder.int8.onnx"
    assert best_radius_px(seg) == pytest.approx(60, abs=2)


def test_precision_float_keeps_the_float_decoder(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKWEB_DECODER_PRECISION", "float")
    seg = engine_for(model_with_an_int8_decoder(tmp_path / "m"))
    assert seg.decoder_file().name == "decoder.onnx"
    assert best_radius_px(seg) == pytest.approx(40, abs=2)


def test_a_model_without_an_int8_decoder_uses_its_float_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKWEB_DECODER_PRECISION", raising=False)
    seg = engine_for(fx.sam_model(tmp_path / "m"))
    assert seg.decoder_file().name == "decoder.onnx"


def test_a_named_int8_decoder_that_is_missing_is_a_descriptor_error(tmp_path):
    folder = model_with_an_int8_decoder(tmp_path / "m")
    (folder / "decoder.int8.onnx").unlink()
    with pytest.raises(DescriptorError, match="decoder.int8.onnx"):
        load_descriptor(folder)


def test_a_bad_precision_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKWEB_DECODER_PRECISION", "fp8")
    seg = engine_for(model_with_an_int8_decoder(tmp_path / "m"))
    with pytest.raises(ValueError, match="MASKWEB_DECODER_PRECISION"):
        seg.decoder_file()
