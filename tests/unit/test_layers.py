"""Who may import whom (docs/architecture.md), checked on the source itself.

Every import counts -- at module level, inside functions, and under
``TYPE_CHECKING`` -- because each one is a dependency a reader has to follow.
The imports must also form no cycle (counting function-level and
``TYPE_CHECKING`` imports too: a cycle hidden in a function is still two
modules that cannot be understood apart).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "projections", "api", "workers", "entrypoints")

#: Top-level names each layer may import from the project and from the
#: libraries that define a layer (web, broker, mail).  Anything else from the
#: standard library or third parties is not restricted here.
ALLOWED: dict[str, set[str]] = {
    "ledger": {"ledger"},
    "projections": {"projections", "ledger"},
    "api": {"api", "ledger", "projections", "flask", "flask_smorest", "flask_limiter", "flask_babel", "werkzeug",
            "marshmallow", "webargs", "apispec"},
    "workers": {"workers", "ledger", "kafka", "smtplib"},
    "entrypoints": set(PACKAGES) | {"flask", "kafka", "click", "gunicorn", "rich"},
}
#: Names that belong to a layer: importing them from elsewhere is a violation.
GUARDED = set(PACKAGES) | {"flask", "flask_smorest", "flask_limiter", "flask_babel", "werkzeug", "marshmallow",
                           "webargs", "apispec",
                           "kafka", "smtplib", "aiosmtpd"}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted name) for every import; relative imports are not used here."""
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    found: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # ``from api.blueprints import events`` names the module api.blueprints.events
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_each_layer_imports_only_what_it_may(package: str) -> None:
    violations = []
    for path in _modules(package):
        for line, name in _imports(ast.parse(path.read_text())):
            top = name.split(".")[0]
            if top in GUARDED and top not in ALLOWED[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not violations, "\n".join(sorted(set(violations)))


def test_nothing_outside_the_composition_root_imports_it() -> None:
    """Also under TYPE_CHECKING: the typed container lives in ledger/."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES if package != "entrypoints"
        for path in _modules(package)
        for line, name in _imports(ast.parse(path.read_text()))
        if name.split(".")[0] == "entrypoints"
    ]
    assert offenders == []


def test_imports_form_no_cycle() -> None:
    known = {_module_name(p): p for package in PACKAGES for p in _modules(package)}
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        deps = {dep for _, dep in _imports(ast.parse(path.read_text())) if dep in known and dep != name}
        # ``from api.pages import submissions`` needs the submodule, not the
        # package's __init__ (which is only the package being initialised).
        graph[name] = {d for d in deps if not any(other.startswith(d + ".") for other in deps)}
    # Iterative depth-first search; a back edge is a cycle.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in state:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        trail = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                trail.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt):], nxt])
            elif nxt not in state:
                state[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_is_registered_only_if_it_exists() -> None:
    """Explicit lists everywhere: a typo must fail at import, not be skipped."""
    offenders = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in _modules(package)
        if "find_spec" in path.read_text() or "except ModuleNotFoundError" in path.read_text()
    ]
    assert offenders == []
