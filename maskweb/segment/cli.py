"""``models`` command line: ``install <name>`` and ``list``.

The web app wraps it as ``python manage.py models ...``; it also runs on its own as
``python -m maskweb.segment.cli ...``. Exit status: 0 done, 1 failed (message on stderr),
2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maskweb.segment.install import KNOWN_PACKAGES, InstallError, base_url, install
from maskweb.segment.registry import forget_loaded, list_models, search_path, user_models_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="models", description="Manage segmentation models.")
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("install", help="download and install a darktable-ai model package",
                         description="Packages: " + ", ".join(KNOWN_PACKAGES))
    ins.add_argument("name", help="package id, e.g. mask-object-sam21-small")
    ins.add_argument("--base-url", default=None,
                     help="release download URL (default $MASKWEB_MODELS_BASE_URL or "
                          "darktable-ai's latest release)")
    ins.add_argument("--dest", type=Path, default=None,
                     help="models folder (default $MASKWEB_MODELS_DIR or "
                          "~/.local/share/maskweb/models)")
    ins.add_argument("--sha256", default=None,
                     help="expected digest, when the release has no versions.json")
    sub.add_parser("list", help="show installed models and the default")
    return p


def _progress(done: int, total: int | None) -> None:
    if total:
        sys.stderr.write(f"\r  {done / 1e6:7.1f} / {total / 1e6:.1f} MB")
    else:
        sys.stderr.write(f"\r  {done / 1e6:7.1f} MB")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on bad usage / --help
        return int(exc.code or 0)
    if args.command == "install":
        url = args.base_url or base_url()
        dest = args.dest or user_models_dir()
        print(f"Installing {args.name} from {url} into {dest}")
        try:
            folder = install(args.name, url=url, dest=dest, sha256=args.sha256,
                             progress=_progress if sys.stderr.isatty() else None)
        except InstallError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        forget_loaded()
        print(f"Installed {args.name} in {folder}")
        return 0
    models = list_models()
    width = max(len(m.id) for m in models)
    for m in models:
        mark = "*" if m.is_default else " "
        where = str(m.path) if m.path else "built-in"
        print(f"{mark} {m.id:<{width}}  {m.family:<9}  {m.licence:<22}  {where}")
    print("(* default; searched: " + ", ".join(str(p) for p in search_path()) + ")")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
