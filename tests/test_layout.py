"""The house's layout, read from the source: no import circle anywhere in maskweb, and the rooms
of maskweb.masking depend one way (edges on top, the session domain in the middle, the job,
decoding and plumbing below it; docs/design.md).

Every import counts, also one inside a function: a circle hidden in a function body is still a
circle a newcomer has to untangle.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "maskweb"

# maskweb.masking's rooms, top first. A room imports only rooms of a lower rank (and itself).
RANK = {
    "api": 4, "live": 4, "worker": 4, "management": 4,  # the edges: HTTP, socket, Celery, CLI
    "editing": 3,  # the session domain
    "jobs": 2,  # the encode job
    "decoding": 1,  # decoding and its caches
    "plumbing": 0, "protocol": 0,  # Redis, the channel layer, thread pools; the messages
    "data": -1,  # models, migrations, apps: the data every room reads
}
DATA = {"models", "migrations", "apps"}
PURE = ("maskweb.segment", "maskweb.export")  # no Django, nothing of the web app


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> Iterator[str]:
    """The modules ``name`` imports, anywhere in its body: ``from pkg import sub`` counts as
    an import of ``pkg.sub`` when that is a module, of ``pkg`` otherwise."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in MODULES else base


@functools.cache
def graph() -> dict[str, set[str]]:
    return {name: {m for m in imports(name) if m in MODULES and m != name} for name in MODULES}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def room(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) < 3 or parts[:2] != ["maskweb", "masking"]:
        return None
    return "data" if parts[2] in DATA else parts[2]


def test_the_checker_finds_a_circle_and_a_relative_import() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "maskweb.masking.editing.access" in set(imports("maskweb.masking.editing"))


def test_no_import_circle_anywhere_in_maskweb() -> None:
    assert circles(graph()) == []


def test_every_module_of_masking_lives_in_a_known_room() -> None:
    unknown = sorted(name for name in MODULES if room(name) is not None
                     and room(name) not in RANK)
    assert unknown == [], "a new room needs its rank here and a line in docs/design.md"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if room(n) is not None))
def test_rooms_depend_downwards_only(name: str) -> None:
    mine = room(name)
    assert mine is not None
    upward = sorted(
        other for other in graph()[name]
        if room(other) is not None and room(other) != mine
        and RANK[room(other) or ""] >= RANK[mine])
    assert upward == [], f"{name} ({mine}) imports a room at its level or above"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(PURE)))
def test_inference_and_export_stay_pure(name: str) -> None:
    """maskweb.segment and maskweb.export: no Django and nothing of the web app inside, so
    they run (and are tested) on their own, e.g. in the CLI and the benches."""
    outside = sorted(m for m in imports(name) if m.split(".")[0] == "django"
                     or (m.startswith("maskweb.") and not m.startswith(PURE)))
    assert outside == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("maskweb.photos")))
def test_photos_know_nothing_of_masking(name: str) -> None:
    assert not [m for m in imports(name) if m.startswith("maskweb.masking")]
