"""The import graph of ``src/omniretrieve``: no circles, and the test doubles never load at runtime.

The graph is read from the source (``ast``), not by importing: an edge is an import statement that
runs when its module is imported (module level, ``try``/``if`` blocks included, ``if
TYPE_CHECKING:`` blocks and function bodies left out). ``from package import name`` is an edge to
``package.name`` when that is a module, else to ``package``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import omniretrieve

PACKAGE_DIR = Path(omniretrieve.__file__).resolve().parent
SRC_DIR = PACKAGE_DIR.parent
TESTING = "omniretrieve.testing"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_statements(block)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}


def _import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package modules it imports at import time."""
    files = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _import_time_statements(tree.body):
            edges |= _targets(node, module, path.name == "__init__.py", known)
        graph[module] = {target for target in edges if target in known and target != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_the_graph_reader_sees_real_edges() -> None:
    graph = _import_graph()
    assert "omniretrieve.embedding.base" in graph["omniretrieve.embedding"]
    assert "omniretrieve.models" in graph["omniretrieve.embedding.base"]
    assert "omniretrieve.errors" in graph["omniretrieve.types"]
    assert "omniretrieve.embedding" in graph["omniretrieve.testing.fakes"]
    assert "omniretrieve.media" not in graph["omniretrieve.embedding.base"]  # TYPE_CHECKING only
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_no_import_circles_in_the_package() -> None:
    assert _cycles(_import_graph()) == []


def test_no_runtime_module_imports_the_test_doubles_at_import_time() -> None:
    graph = _import_graph()
    offenders = {
        module: sorted(t for t in targets if t == TESTING or t.startswith(TESTING + "."))
        for module, targets in graph.items()
        if not (module == TESTING or module.startswith(TESTING + "."))
    }
    assert {module: targets for module, targets in offenders.items() if targets} == {}


def test_the_model_packages_never_import_the_test_doubles() -> None:
    """Not even inside a function: ``load_embedder("fake:N")`` resolves through the scheme registry."""
    for package in ("embedding", "rerank", "models"):
        for path in (PACKAGE_DIR / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not [n for n in names if n.startswith(TESTING)], f"{path}: imports {names}"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_loading_the_demo_model_loads_no_test_double() -> None:
    code = (
        "import sys, omniretrieve; omniretrieve.load_embedder('demo'); "
        "assert not [m for m in sys.modules if m.startswith('omniretrieve.testing')]"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr


def test_a_fake_name_loads_the_fake_on_demand() -> None:
    code = (
        "import sys, omniretrieve; "
        "assert 'omniretrieve.testing.fakes' not in sys.modules; "
        "e = omniretrieve.load_embedder('fake:4'); "
        "assert type(e).__module__ == 'omniretrieve.testing.fakes' and e.dimension == 4; "
        "print('ok')"
    )
    done = _run(code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
