import json

import numpy as np
import pytest

from maskweb.segment.descriptor import DescriptorError, load_descriptor
from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes
from maskweb.segment.onnx_engine import OnnxSegmenter, preprocess
from maskweb.segment.postprocess import sigmoid
from maskweb.segment.types import Box, Point, Prompts
from tests.segment import onnx_fixtures as fx
from tests.segment.synthetic import disc_mask, iou, textured_background

H, W = 240, 360  # landscape: "pad" leaves the bottom of the input frame empty
SX, SY = 1024 / W, 1024 / H  # SAM 2.1 and SegNext stretch the photo to 1024 x 1024


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Photo pixels whose centres lie in the ellipse: a disc of the stretched input frame."""
    yy, xx = np.mgrid[0:H, 0:W]
    return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("MASKWEB_ONNX_THREADS", "1")


def engine_for(folder):
    return OnnxSegmenter(load_descriptor(folder))


def test_sam_click_gives_the_highest_scoring_disc_at_the_click(tmp_path):
    # Radii are in input-frame pixels (256 for a 360 px wide photo): 40 -> 56.25 px here. The
    # graph adds 0.5 input px to the click it is sent (x * s, maskweb's LiteMedSAM
    # convention), so the disc's centre is half an input pixel right of and below it.
    seg = engine_for(fx.sam_model(tmp_path / "m"))
    emb = seg.encode(textured_background())
    pred = seg.decode(emb, Prompts(points=(Point(100.0, 150.0),)))
    scale = 360 / 256
    centre = (100.0 + 0.5 * scale, 150.0 + 0.5 * scale)
    # Each score is the fixture's less one padding token's: the one the client appended.
    assert [round(c.score, 2) for c in pred.candidates] == [0.8, 0.6, 0.4]
    assert pred.best.mask.shape == (H, W) and pred.best.mask.dtype == bool
    assert iou(pred.best.mask, disc_mask(*centre, 40 * scale)) > 0.97
    assert iou(pred.candidates[1].mask, disc_mask(*centre, 10 * scale)) > 0.9


def test_sam1_export_gets_the_client_padding_point_only_without_a_box(tmp_path):
    seg = engine_for(fx.sam_model(tmp_path / "m", radii=(40.0,), scores=(0.9,)))
    assert seg.descriptor.pad_point and seg.descriptor.points == "continuous"
    emb = seg.encode(textured_background())
    click = seg.decode(emb, Prompts(points=(Point(100.0, 150.0),)))
    boxed = seg.decode(emb, Prompts(box=Box(60, 100, 140, 200)))
    assert click.best.score == pytest.approx(0.9 - fx.PAD_TOKEN_SCORE)
    assert boxed.best.score == pytest.approx(0.9)


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


@pytest.mark.parametrize("variant", fx.SAM2_VARIANTS)
def test_sam2_darktable_package_decodes_with_high_res_features(tmp_path, variant):
    seg = engine_for(fx.sam2_package(tmp_path / "mask-object-sam21-tiny", variant=variant))
    d = seg.descriptor
    assert (d.input_size, d.resize, d.pad_point, d.points) == (1024, "stretch", False,
                                                               "pixel_index")
    emb = seg.encode(textured_background())
    assert set(emb.arrays) >= {"high_res_feats_0", "high_res_feats_1", "image_embed"}
    pred = seg.decode(emb, Prompts(points=(Point(180.0, 100.0),)))
    # The click is sent as the pixel's index ((x - 0.5) * s) and the graph adds 0.5.
    centre = (180.0 - 0.5 + 0.5 / SX, 100.0 - 0.5 + 0.5 / SY)
    assert iou(pred.best.mask, ellipse(*centre, 80 / SX, 80 / SY)) > 0.95


@pytest.mark.parametrize("variant", fx.SAM2_VARIANTS)
@pytest.mark.parametrize("prompts", [
    Prompts(points=(Point(180.0, 100.0),)),
    Prompts(points=(Point(180.0, 100.0), Point(40.0, 40.0, positive=False))),
    Prompts(box=Box(120, 60, 240, 160)),
    Prompts(points=(Point(180.0, 100.0),), box=Box(120, 60, 240, 160)),
], ids=["click", "click+background", "box", "box+click"])
def test_sam2_decoder_reads_exactly_one_padding_point_its_own(tmp_path, variant, prompts):
    # The graph appends (0, 0, -1) itself, for a box too (the predictor passes a box as two
    # labelled points): a client padding point would be a second -1 token. The fixture
    # lowers every score by PAD_TOKEN_SCORE for each -1 token it reads.
    seg = engine_for(fx.sam2_package(tmp_path / "mask-object-sam21-tiny", variant=variant))
    pred = seg.decode(seg.encode(textured_background()), prompts)
    assert pred.best.score == pytest.approx(0.95 - fx.PAD_TOKEN_SCORE)


@pytest.mark.parametrize("variant", fx.SAM2_VARIANTS)
def test_sam2_feedback_is_the_clamped_low_res_logits_of_the_best_mask_and_is_used(tmp_path,
                                                                                   variant):
    seg = engine_for(fx.sam2_package(tmp_path / "mask-object-sam21-tiny", radius=160.0,
                                     variant=variant))
    emb = seg.encode(textured_background())
    first = seg.decode(emb, Prompts(points=(Point(100.0, 120.0),)))
    # SAM2ImagePredictor clamps the low-res logits it returns for feeding back to +-32: the
    # fixture's best disc (radius 160 input px) reaches 160 at its centre.
    assert first.feedback is not None and first.feedback.shape == (256, 256)
    assert first.feedback.max() == pytest.approx(32.0)
    # The previous disc (about 56 photo px wide on x) is still there, with feedback only.
    moved = Prompts(points=(Point(200.0, 120.0),))
    assert seg.decode(emb, moved, previous=first).best.mask[120, 60]
    assert not seg.decode(emb, moved).best.mask[120, 60]


def sent_prompts(seg, prompts, image=None):
    """(point_coords [N, 2], point_labels [N]) as the engine feeds them to the decoder."""
    emb = seg.encode(textured_background() if image is None else image)
    feeds = seg._feeds(emb, list(prompts.points), prompts.box, None,
                       emb.meta["scale_x"], emb.meta["scale_y"])
    return feeds["point_coords"][0], feeds["point_labels"][0]


def test_each_family_sends_its_prompts_in_its_own_units(tmp_path):
    click = Point(100.25, 150.75)
    prompts = Prompts(points=(click, Point(30.5, 20.5, positive=False)),
                      box=Box(20.0, 30.0, 200.0, 220.0))
    # maskweb's LiteMedSAM: x * s, box corners first, no padding point with a box.
    s = 256 / 360
    coords, labels = sent_prompts(engine_for(fx.sam_model(tmp_path / "sam")), prompts)
    assert np.allclose(coords, [[20 * s, 30 * s], [200 * s, 220 * s], [100.25 * s, 150.75 * s],
                                [30.5 * s, 20.5 * s]])
    assert labels.tolist() == [2, 3, 1, 0]
    coords, labels = sent_prompts(engine_for(fx.sam_model(tmp_path / "sam")),
                                  Prompts(points=(click,)))
    assert np.allclose(coords, [[100.25 * s, 150.75 * s], [0, 0]]) and labels.tolist() == [1, -1]
    # SAM 2.1: the clicked pixel's index as SAM2ImagePredictor.predict scales it, a pixel
    # centre (c + 0.5) giving c * 1024 / W; box corners as they are; never a padding point.
    coords, labels = sent_prompts(engine_for(fx.sam2_package(tmp_path / "mask-object-sam21-t")),
                                  prompts)
    assert np.allclose(coords, [[20 * SX, 30 * SY], [200 * SX, 220 * SY],
                                [99.75 * SX, 150.25 * SY], [30 * SX, 20 * SY]])
    assert labels.tolist() == [2, 3, 1, 0]
    # SegNext: whole pixels of the 1024 grid, (x, y), int(c * 1024 / W + 0.5) as its
    # reference sends them; the box becomes a click at its centre.
    coords, labels = sent_prompts(
        engine_for(fx.segnext_package(tmp_path / "mask-object-segnext-b2hq")), prompts)
    assert coords.tolist() == [[int(100 * SX + 0.5), int(150 * SY + 0.5)],
                               [int(30 * SX + 0.5), int(20 * SY + 0.5)],
                               [int(110 * SX + 0.5), int(125 * SY + 0.5)]]
    assert labels.tolist() == [1, 0, 1]


def test_segnext_click_lands_on_the_reference_pixel_of_the_grid(tmp_path):
    # A click in pixel (c, r) = (250, 60) is drawn at grid pixel (int(c * SX + 0.5),
    # int(r * SY + 0.5)) = (711, 256), whose centre is (711.5, 256.5) in the 1024 frame.
    # Swapped (y, x), photo pixels or the 0..1 range would put the disc elsewhere.
    seg = engine_for(fx.segnext_package(tmp_path / "mask-object-segnext-b2hq", radius=60.0))
    pred = seg.decode(seg.encode(textured_background()), Prompts(points=(Point(250.5, 60.5),)))
    centre = (711.5 / SX, 256.5 / SY)
    assert iou(pred.best.mask, ellipse(*centre, 60 / SX, 60 / SY)) > 0.95


def test_segnext_answer_is_logits_even_when_every_value_lies_in_0_1(tmp_path):
    # gain 0.0005 and radius 1500 input px: logits from 0.03 to 0.75 over the whole frame, all
    # positive, so all foreground. Read as probabilities, the far side would be background.
    seg = engine_for(fx.segnext_package(tmp_path / "mask-object-segnext-b2hq", radius=1500.0,
                                        gain=0.0005))
    pred = seg.decode(seg.encode(textured_background()), Prompts(points=(Point(20.5, 20.5),)))
    assert pred.best.mask.all()


def test_segnext_feedback_is_the_sigmoid_of_its_logits(tmp_path):
    # The reference predictor feeds back sigmoid(logits), not the raw logits (darktable) nor
    # a hard mask. A click in pixel (90, 60) lands on grid pixel (256, 256); the fixture's
    # logits there are the radius, 60, and 62 px to the right of it -2.
    seg = engine_for(fx.segnext_package(tmp_path / "mask-object-segnext-b2hq", radius=60.0))
    first = seg.decode(seg.encode(textured_background()), Prompts(points=(Point(90.5, 60.5),)))
    fb = first.feedback
    assert fb is not None and fb.shape == (1024, 1024)
    assert fb[256, 256] == pytest.approx(1.0)
    assert fb[256, 256 + 62] == pytest.approx(float(sigmoid(np.float32(-2.0))), abs=1e-5)
    assert fb[256, 256 + 58] == pytest.approx(float(sigmoid(np.float32(2.0))), abs=1e-5)


def test_segnext_uses_full_resolution_feedback_and_turns_a_box_into_a_click(tmp_path):
    seg = engine_for(fx.segnext_package(tmp_path / "mask-object-segnext-b2hq", radius=60.0))
    emb = seg.encode(textured_background())
    first = seg.decode(emb, Prompts(points=(Point(90.5, 90.5),)))
    centre = ((int(90 * SX + 0.5) + 0.5) / SX, (int(90 * SY + 0.5) + 0.5) / SY)
    assert iou(first.best.mask, ellipse(*centre, 60 / SX, 60 / SY)) > 0.9
    assert first.feedback is not None and first.feedback.shape == (1024, 1024)
    # A click overlapping the first disc: its far side (x=75) is there only with feedback.
    moved = Prompts(points=(Point(110.5, 90.5),))
    assert seg.decode(emb, moved, previous=first).best.mask[90, 75]
    assert not seg.decode(emb, moved).best.mask[90, 75]
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
    half = 0.5 * 360 / 256  # the graph's +0.5 input px
    assert iou(pred.best.mask, disc_mask(250.0 + half, 100.0 + half, 30 * 360 / 256)) > 0.97
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
