"""Random-weight SAM 2.1 tiny, small and base-plus packages, installed for the benches.

    .venv/bin/python -m bench.sam21_packages [--sizes tiny,small,base-plus]

The real weights cannot be downloaded here; the architecture can (PyPI ``sam2==1.1.0`` in
``.venv-golden``, built by ``scripts/setup --test``). With seeded random weights the packages
have the real models' shapes and operations, so their encoder and decoder take the time the
real ones take (the masks mean nothing). ``training/sam21_random.py`` exports each size as a
darktable-ai package (the ``masks256`` decoder variant) into ``build/sam21-bench/release``;
they are then installed through ``models install``'s code, from a server on loopback, into
``build/sam21-bench/models/<id>``, the folders to give bench.decode_speed and bench.latency
as ``--model``. An export that is already there is kept (delete the folder to rebuild).
"""

from __future__ import annotations

import argparse
import http.server
import subprocess
import sys
import threading
from pathlib import Path

from maskweb.segment.install import install

REPO = Path(__file__).resolve().parents[1]
GOLDEN_PYTHON = REPO / ".venv-golden" / "bin" / "python"
ROOT = REPO / "build" / "sam21-bench"
SIZES = ("tiny", "small", "base-plus")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def build(sizes: list[str]) -> list[Path]:
    release, models = ROOT / "release", ROOT / "models"
    for size in sizes:
        if not (release / f"mask-object-sam21-{size}.dtmodel").is_file():
            if not GOLDEN_PYTHON.is_file():
                raise SystemExit(f"{GOLDEN_PYTHON} is missing: run scripts/setup --test")
            subprocess.run([str(GOLDEN_PYTHON), str(REPO / "training" / "sam21_random.py"),
                            "export", "--size", size, "--variant", "masks256",
                            "--out", str(ROOT / "packages"), "--release", str(release)],
                           check=True, cwd=REPO)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: _Quiet(*a, directory=str(release), **k))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        return [install(f"mask-object-sam21-{size}", url=url, dest=models) for size in sizes]
    finally:
        httpd.shutdown()
        httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(SIZES),
                   help=f"comma-separated, of {', '.join(SIZES)}")
    args = p.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        p.error(f"unknown sizes {unknown}")
    for folder in build(sizes):
        print(folder, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
