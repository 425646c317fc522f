"""The latency an ideal server would give on the clicks a bench run really sent.

The ideal server decodes each click once, first come first served, on ``slots`` cores, each
decode taking the bare decoder's time, and does nothing else: no socket, no database, no PNG,
no other process on the machine, no slowdown when two decodes share the memory bus. Its p95 on
the same send times is the floor under the measured p95 while the cores keep up: what is left
above it is ours. Once they fall behind (16 sessions on 2 cores) it is no floor: the real server
decodes a session's piled-up clicks in one step, and this one decodes every click.

It also shows what the click schedule itself costs. Four sessions that send their first click
at the same instant keep two clicks waiting a whole decode on two cores, so even this server's
p95 is 2x the bare decoder; that is why bench.latency starts its sessions at independent
moments, as four people would.
"""

from __future__ import annotations

import heapq


def fifo_latencies(send_times: list[float], decode_s: float, slots: int) -> list[float]:
    """Each send's time to its mask, in send order, on ``slots`` first-come-first-served cores."""
    if slots < 1:
        raise ValueError("at least one slot")
    free_at = [float("-inf")] * slots  # when each core finishes its last decode
    heapq.heapify(free_at)
    latencies = []
    for sent in sorted(send_times):
        start = max(sent, heapq.heappop(free_at))
        heapq.heappush(free_at, start + decode_s)
        latencies.append(start + decode_s - sent)
    return latencies
