"""The package's layering: no import cycle (TYPE_CHECKING imports count) and no module that
imports from a tier above its own."""

import ast
from pathlib import Path

import binary_nn

ROOT = Path(binary_nn.__file__).parent
#: each tier may import its own modules and those of the tiers listed for it
TIERS = {
    "base": set(),
    "nn": {"base"},
    "data": {"base"},
    "learning": {"base", "nn"},
    "deploy": {"base", "nn"},
    "run": {"base", "nn", "data", "learning"},
    "experiments": {"base", "nn", "data", "learning", "run"},
}
#: the modules at the package top that others build on; the rest there are entry points
BASE = {"errors", "registry", "files", "schema", "limits", "archive", "cli", "options", "version"}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in it (functions, TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in known else base
                if target in known and target != name and not name.startswith(target + "."):
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known and a.name != name)
    return found


def tier(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) == 1:
        return None  # the package itself: the front door, imports anything
    if parts[1] in TIERS:
        return parts[1]
    return "base" if parts[1] in BASE else None  # None: an entry point


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    cycles: list[str] = []
    state: dict[str, str] = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle():
    found = modules()
    assert (
        find_cycles({name: imports(name, path, set(found)) for name, path in found.items()}) == []
    )


def test_no_module_imports_from_a_tier_above_its_own():
    found = modules()
    upward = []
    for name, path in found.items():
        own = tier(name)
        if own is None:
            continue
        for target in imports(name, path, set(found)):
            other = tier(target)
            if other is None or (other != own and other not in TIERS[own]):
                upward.append(f"{name} imports {target}")
    assert upward == []
