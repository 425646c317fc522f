"""One table from several bench result files, restricted to the photos they all finished.

    .venv/bin/python training/bench_table.py build/bench_*.json bench/results/x.json

Reads bench/quality.py's JSON ({"images": [...]}) and bench_cached.py's ({config: [...]}),
so runs that were cut short are still compared on the same photos.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quality import summarise, table  # noqa: E402


def load(path: Path) -> dict[str, list[dict]]:
    data = json.loads(path.read_text())
    if "images" in data:
        a = data["args"]
        name = a["model"] + (f" +{a['refine']}" if a.get("refine") else "")
        return {name: data["images"]}
    return {k.replace(":", " +"): v for k, v in data.items()}


def main(argv: list[str]) -> None:
    runs: dict[str, list[dict]] = {}
    for p in argv:
        runs.update(load(Path(p)))
    common = set.intersection(*({r["image"] for r in v} for v in runs.values()))
    rows = [(k, summarise([r for r in v if r["image"] in common])) for k, v in runs.items()]
    print(f"{len(common)} photos common to all runs\n")
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
