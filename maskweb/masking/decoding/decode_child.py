"""A decode process of the web process (maskweb.masking.decoding.decode_procs): reads decode
requests from its stdin, answers on its stdout, exits when the pipe closes or its parent is
gone.

    python -m maskweb.masking.decoding.decode_child <parent pid>
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import sys
import threading
import time
from typing import IO, Any


def _watch_parent(parent: int) -> None:
    """Exits once the web process is gone, even in the middle of a decode (SIGKILLed
    parent: nobody will read the answer)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    from django.conf import settings

    from maskweb.masking.decoding import decode_procs, embeddings, engine
    from maskweb.masking.decoding.lru import ByteLRU
    from maskweb.segment.types import Embedding

    cache: ByteLRU[Embedding] = ByteLRU(lambda: settings.EMBEDDING_CACHE_BYTES,
                                        embeddings.embedding_bytes)
    while True:
        try:
            request = decode_procs.read_frame(requests)
        except EOFError:
            return
        kind, model_id, key, embedding, prompts, previous = request
        assert kind == "decode", kind
        if embedding is not None:
            cache.put(key, embedding)
        else:
            embedding = cache.get(key)
        answer: tuple[Any, ...]
        if embedding is None:
            answer = ("missing",)
        else:
            try:
                answer = ("ok", engine.decode(model_id, embedding, prompts, previous))
            except Exception as exc:  # the model's failure is the caller's to report
                answer = ("error", exc)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle
            data = pickle.dumps(("error", RuntimeError(repr(exc))))
        try:
            decode_procs.send_raw(answers, data)
        except OSError:  # the web process is gone
            return
        del answer, request, embedding, previous  # not kept alive until the next request


def main() -> None:
    parent = int(sys.argv[1])
    # The pipes are this process's own: nothing else may write to fd 1 (a library's print).
    answers = os.fdopen(os.dup(1), "wb")
    requests = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the web process decides when this ends
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch",
                     daemon=True).start()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maskweb.settings")
    import django

    django.setup()
    from maskweb.masking.decoding import decode_procs, engine

    engine.one_thread_per_decode()
    engine.warm_up_default("decoder")
    gc.freeze()  # Django, numpy and the model live as long as the process (see maskweb.asgi)
    decode_procs.send_frame(answers, ("ready", os.getpid()))
    log = logging.getLogger("maskweb.masking.decoding.decode_child")
    log.info("decode process %d ready", os.getpid())
    serve(requests, answers)


if __name__ == "__main__":
    main()
