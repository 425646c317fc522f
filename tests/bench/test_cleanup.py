import numpy as np

from bench import cleanup
from maskweb.segment import classical, onnx_engine, postprocess


def test_the_bench_collects_the_masks_the_engine_cleans_and_finds_them_cleaned_alike(capsys):
    cases = cleanup.collect("grabcut", limit=1, side=256, clicks=3)
    # One clean-up a click, and one more for the first click's second candidate (the colour
    # region it landed on: grabCut offers the part beside the whole).
    assert len(cases) == 4
    mask, points, box = cases[-1]
    assert mask.dtype == bool and max(mask.shape) == 256 and len(points) == 3
    # The engines' own clean_mask is back once collecting is done.
    assert classical.clean_mask is postprocess.clean_mask
    assert onnx_engine.clean_mask is postprocess.clean_mask
    assert np.array_equal(cleanup.two_steps(mask, points, box),
                          postprocess.clean_mask(mask, points, box))
    assert cleanup.main(["--model", "grabcut", "--limit", "1", "--side", "256",
                         "--clicks", "2", "--rounds", "1"]) == 0
    assert "the same mask in 3 of 3" in capsys.readouterr().out  # 2 clicks, 3 candidates


def test_the_random_clicker_adds_its_own_clicks_one_by_one_and_the_masks_clean_alike():
    cases = cleanup.collect("grabcut", limit=1, side=256, clicks=4, clicker="random")
    ritm = cleanup.collect("grabcut", limit=1, side=256, clicks=4)
    assert len(cases) == 5  # the first click cleans two candidates (see above)
    last = cases[-1][1]
    assert [points for _, points, _ in cases] == [last[:1]] + [last[:i + 1] for i in range(4)]
    assert last[0].positive  # bench.latency's person starts inside the object
    assert last != ritm[-1][1], "the same clicks as the default clicker"
    assert all(np.array_equal(cleanup.two_steps(m, p, b), postprocess.clean_mask(m, p, b))
               for m, p, b in cases)
