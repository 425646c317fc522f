"""onnxruntime sessions: which execution provider, how many threads.

No configuration is needed: the CUDA provider is used when onnxruntime-gpu is installed and a
GPU answers, the CPU provider otherwise. ``MASKWEB_ONNX_PROVIDER=cpu`` forces the CPU (e.g. a
GPU shared with something else); ``MASKWEB_ONNX_THREADS`` caps the CPU threads per session;
``MASKWEB_DECODER_PRECISION=float`` keeps a model's full-precision decoder on the CPU where it
ships an int8 one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def choose_providers(available: list[str], role: str = "encoder",
                     forced: str | None = None) -> list[str]:
    """Providers to ask for, best first, from ``ort.get_available_providers()``.

    The encoder goes to CUDA when it is available. The decoder stays on the CPU, as darktable
    does: it is small, and copying the embedding to the GPU for every click costs more than
    the decode itself.
    """
    wanted = (forced or os.environ.get("MASKWEB_ONNX_PROVIDER", "auto")).strip().lower()
    if wanted not in ("auto", "cpu", "cuda"):
        raise ValueError(f"MASKWEB_ONNX_PROVIDER must be auto, cpu or cuda, not {wanted!r}")
    use_cuda = CUDA in available and wanted != "cpu" and (role == "encoder" or wanted == "cuda")
    if wanted == "cuda" and CUDA not in available:
        log.warning("MASKWEB_ONNX_PROVIDER=cuda but onnxruntime has no CUDA provider")
    return [CUDA, CPU] if use_cuda else [CPU]


def thread_count(role: str) -> int:
    """Encoder: all cores (up to 8, past which ORT scales poorly). Decoder: 1.

    Measured with LiteMedSAM's decoder on a 2-core machine under load from other work:
    one thread decoded in 81 ms, two threads in 155 ms (87 ms without spinning), and one
    thread per decode also gave the most decodes per second with 2 and 4 sessions clicking at
    once. Decodes of several sockets run side by side, which is parallelism enough.

    Tried again on 2026-12-02 with the int8 decoder and no spinning: two threads decode in
    22 ms alone against 32 ms, and two 2-thread decodes at once share the cores as well as
    two 1-thread ones. In the live stack (bench.latency, 2 runs each, alternating) the gain
    mostly went: a 1-session click took 44-45 ms against 46-47 ms, +20 ms over the faster
    bare decoder instead of +10 ms, as the event loop and the page's other work took the
    second core from the decode; the 4-session p95 was 68-77 ms against 66-70 ms.
    """
    env = os.environ.get("MASKWEB_ONNX_THREADS", "").strip()
    cores = os.cpu_count() or 1
    if env:
        try:
            return max(1, int(env))
        except ValueError as exc:
            raise ValueError(f"MASKWEB_ONNX_THREADS must be an integer, not {env!r}") from exc
    return min(cores, 8) if role == "encoder" else 1


def decoder_precision() -> str:
    """``int8`` (the default) or ``float``: which decoder file a CPU decode uses when the model
    ships both (``decoder_int8`` in its model.json).

    LiteMedSAM's int8 decoder takes about 42 ms a decode against 76 ms (one thread), and
    its masks agree with the float decoder's at IoU 0.994 (COCO_MVal); models/*/MODEL_CARD.md
    has the DAVIS figures. On the GPU the float decoder is always used: the int8 graph's
    dynamic quantization has no CUDA kernels.
    """
    value = os.environ.get("MASKWEB_DECODER_PRECISION", "int8").strip().lower()
    if value not in ("int8", "float"):
        raise ValueError(f"MASKWEB_DECODER_PRECISION must be int8 or float, not {value!r}")
    return value


def decoder_on_gpu() -> bool:
    import onnxruntime as ort

    return choose_providers(list(ort.get_available_providers()), "decoder")[0] != CPU


def make_session(path: Path, role: str) -> Any:
    """An InferenceSession for ``path``; falls back to the CPU if the GPU one fails to start."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = thread_count(role)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads must not spin: on one machine the worker's encoder shares the cores
    # with the web process's decoders, and spinning threads starve them (2-thread decode
    # measured 155 ms spinning vs 87 ms not).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = choose_providers(list(ort.get_available_providers()), role)
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception:  # noqa: BLE001 - e.g. CUDA present in the build but no usable GPU
        if providers == [CPU]:
            raise
        log.warning("could not start %s on %s; using the CPU", path.name, providers[0],
                    exc_info=True)
        session = ort.InferenceSession(str(path), sess_options=opts, providers=[CPU])
    log.info("%s %s on %s", role, path, session.get_providers()[0])
    return session
