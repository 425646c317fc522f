import numpy as np
import pytest

from bench.decode_speed import first_prompts, parse_variant


def test_a_variant_is_the_engine_settings_it_names():
    assert parse_variant("default") == {}
    assert parse_variant("iterations=3,max_pixels=None") == {"iterations": "3",
                                                             "max_pixels": "None"}


def test_the_first_prompts_are_the_protocol_click_and_the_objects_box():
    gt = np.zeros((60, 90), bool)
    gt[10:41, 20:71] = True
    click, box = first_prompts(gt)
    (point,) = click.points
    assert point.positive and gt[int(point.y), int(point.x)]
    assert box.box is not None
    assert (box.box.x0, box.box.y0, box.box.x1, box.box.y1) == (20.0, 10.0, 71.0, 41.0)


@pytest.mark.parametrize("bad", ["iterations", "=3"])
def test_a_malformed_variant_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_variant(bad)
