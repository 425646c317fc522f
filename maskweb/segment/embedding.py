"""Embedding <-> bytes, for the Redis cache. No pickle: a JSON header and raw array bytes.

Layout: ``MAGIC`` + uint32 big-endian header length + UTF-8 JSON header + array bytes,
one after another in header order. The header names each array's stored dtype, its dtype in
memory, its shape and its byte length, so a truncated or foreign blob is refused with a
ValueError instead of being misread.

Float arrays are stored as float16 by default (half the bytes; the bench reports what this
costs in mask IoU) and come back as their original float dtype, so ONNX sessions get float32.
Integer and bool arrays (e.g. the classical engine's images) are stored exactly.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from maskweb.segment.types import Embedding

MAGIC = b"MWEMB\x01"
_ALLOWED = {"float16", "float32", "float64", "uint8", "int8", "uint16", "int16", "int32",
            "int64", "bool"}
_FLOAT_STORE = {"float16", "float32"}


def embedding_to_bytes(emb: Embedding, dtype: str = "float16") -> bytes:
    """Serialise ``emb``; float arrays are stored as ``dtype`` ("float16" or "float32")."""
    if dtype not in _FLOAT_STORE:
        raise ValueError(f"dtype must be one of {sorted(_FLOAT_STORE)}, not {dtype!r}")
    entries = []
    chunks = []
    for name, array in emb.arrays.items():
        a = np.asarray(array)
        if a.dtype.name not in _ALLOWED:
            raise ValueError(f"array {name!r} has unsupported dtype {a.dtype}")
        stored = a.astype(dtype) if a.dtype.kind == "f" else a
        raw = np.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<")).tobytes()
        entries.append({"name": name, "dtype": a.dtype.name, "stored": stored.dtype.name,
                        "shape": list(a.shape), "nbytes": len(raw)})
        chunks.append(raw)
    header = {"model_id": emb.model_id, "image_size": list(emb.image_size),
              "meta": emb.meta, "arrays": entries}
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return b"".join([MAGIC, struct.pack(">I", len(head)), head, *chunks])


def embedding_from_bytes(data: bytes) -> Embedding:
    """Inverse of :func:`embedding_to_bytes`; ValueError on anything that is not one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError("embedding data must be bytes")
    buf = bytes(data)
    if not buf.startswith(MAGIC) or len(buf) < len(MAGIC) + 4:
        raise ValueError("not a maskweb embedding (bad magic)")
    (head_len,) = struct.unpack(">I", buf[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if start + head_len > len(buf):
        raise ValueError("truncated embedding header")
    try:
        header = json.loads(buf[start:start + head_len].decode("utf-8"))
        model_id = str(header["model_id"])
        height, width = (int(v) for v in header["image_size"])
        meta = dict(header.get("meta") or {})
        entries = list(header["arrays"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"corrupt embedding header: {exc}") from exc
    offset = start + head_len
    arrays: dict[str, np.ndarray] = {}
    for entry in entries:
        try:
            name, dtype, stored = str(entry["name"]), str(entry["dtype"]), str(entry["stored"])
            shape = tuple(int(s) for s in entry["shape"])
            nbytes = int(entry["nbytes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"corrupt embedding array entry: {exc}") from exc
        if dtype not in _ALLOWED or stored not in _ALLOWED or any(s < 0 for s in shape):
            raise ValueError(f"array {name!r}: bad dtype or shape")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(stored).itemsize
        if nbytes != expected or offset + nbytes > len(buf):
            raise ValueError(f"array {name!r}: truncated or wrong size")
        a = np.frombuffer(buf, dtype=np.dtype(stored).newbyteorder("<"), count=expected
                          // np.dtype(stored).itemsize, offset=offset).reshape(shape)
        arrays[name] = a.astype(np.dtype(dtype))  # a native, writable copy
        offset += nbytes
    if offset != len(buf):
        raise ValueError("trailing bytes after embedding arrays")
    return Embedding(model_id=model_id, image_size=(height, width), arrays=arrays, meta=meta)
