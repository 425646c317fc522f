import pytest

from bench.queueing import fifo_latencies


def test_spaced_clicks_wait_for_nothing():
    assert fifo_latencies([0.0, 1.0, 2.0], 0.05, 1) == pytest.approx([0.05] * 3)


def test_simultaneous_clicks_queue_behind_the_busy_cores():
    # Four first clicks at once on two cores: two answered after one decode, two after two.
    assert fifo_latencies([0.0] * 4, 0.05, 2) == pytest.approx([0.05, 0.05, 0.1, 0.1])


def test_a_click_waits_only_for_the_core_that_frees_first():
    # Cores busy until 0.05 and 0.08 (sends at 0 and 0.03); a send at 0.04 starts at 0.05.
    got = fifo_latencies([0.04, 0.0, 0.03], 0.05, 2)
    assert got == pytest.approx([0.05, 0.05, 0.06])


def test_each_send_may_take_its_own_decode_time():
    # One core: a long decode (0.2) sent first holds up the short one sent at 0.1.
    got = fifo_latencies([0.1, 0.0], [0.05, 0.2], 1)
    assert got == pytest.approx([0.2, 0.15])


def test_no_cores_or_unmatched_decode_times_are_errors():
    with pytest.raises(ValueError):
        fifo_latencies([0.0], 0.05, 0)
    with pytest.raises(ValueError):
        fifo_latencies([0.0, 1.0], [0.05], 1)
