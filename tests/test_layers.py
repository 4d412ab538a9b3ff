"""The layers import downwards only: api -> answer -> llm, and the shared modules (settings, errors,
schemas) import none of them. Read from the source with `ast`, so an import inside a function
counts as much as one at the top, and no module has to be imported to be checked."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "service"

# What each part of `service` must never import.
FORBIDDEN = {
    "service.llm": ("service.answer", "service.api", "service.cli", "service.testing"),
    "service.answer": ("service.api", "service.cli", "service.testing"),
    "service.api": ("service.cli", "service.testing"),
    "service.feedback": ("service.api", "service.answer", "service.llm", "service.cli", "service.testing"),
    "service.settings": ("service.api", "service.answer", "service.llm"),
    "service.errors": ("service.api", "service.answer", "service.llm"),
    "service.schemas": ("service.api", "service.answer", "service.llm"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, resolved to absolute names ("from service.api import x" gives
    "service.api" and "service.api.x")."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def violations(root: Path = SERVICE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path)
        for layer, banned in FORBIDDEN.items():
            if name != layer and not name.startswith(layer + "."):
                continue
            for imported in sorted(imports_of(path)):
                if any(imported == b or imported.startswith(b + ".") for b in banned):
                    out.append(f"{name} imports {imported}")
    return out


def test_layers_import_downwards_only() -> None:
    assert violations() == []


def test_the_check_catches_an_answer_module_importing_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself can fail: a copy of the tree where an answer module imports the api."""
    copy = tmp_path / "service"
    for path in SERVICE.rglob("*.py"):
        target = copy / path.relative_to(SERVICE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    context = copy / "answer" / "context.py"
    context.write_text(context.read_text(encoding="utf-8") + "\nfrom service.api.state import AppState\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)  # module names from the copy
    assert violations(copy) == [
        "service.answer.context imports service.api.state",
        "service.answer.context imports service.api.state.AppState",
    ]


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SERVICE.rglob("*.py")}
    return {name: {i for i in imports_of(path) if i in modules and i != name} for name, path in modules.items()}


def test_there_is_no_import_cycle() -> None:
    graph = import_graph()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*stack, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])
