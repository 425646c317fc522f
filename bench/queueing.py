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
from collections.abc import Sequence


def fifo_latencies(send_times: Sequence[float], decode_s: float | Sequence[float],
                   slots: int) -> list[float]:
    """Each send's time to its mask, in send-time order, on ``slots`` first-come-first-served
    cores. ``decode_s`` is one service time for every send, or each send's own (grabCut's
    decodes differ threefold between clicks: one median understates the ideal p95)."""
    if slots < 1:
        raise ValueError("at least one slot")
    if isinstance(decode_s, (int, float)):
        decode_s = [float(decode_s)] * len(send_times)
    if len(decode_s) != len(send_times):
        raise ValueError(f"{len(send_times)} sends but {len(decode_s)} service times")
    free_at = [float("-inf")] * slots  # when each core finishes its last decode
    heapq.heapify(free_at)
    latencies = []
    for sent, service in sorted(zip(send_times, decode_s, strict=True)):
        start = max(sent, heapq.heappop(free_at))
        heapq.heappush(free_at, start + service)
        latencies.append(start + service - sent)
    return latencies
