"""The package layout keeps imports one way: a subpackage imports only those below it in the data flow.

Every module of ``hopfield_masks``, ``supsup_core`` and ``tools`` is parsed (ast, nothing is imported) and
each ``import``/``from … import`` of a project module becomes an edge. The test fails on an import that
goes up the flow, on ``hopfield_masks`` importing ``supsup_core``, on library code importing ``tools`` or
click, and on any cycle between modules.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hopfield_masks", "supsup_core", "tools")

# The data flow, lowest first. A module in one rank imports only modules of its own or a lower rank.
RANKS = {
    "hopfield_masks": 0,  # the associative memory knows nothing of networks
    "supsup_core.checks": 1,
    "supsup_core.data": 2,
    "supsup_core.nn": 3,
    "supsup_core.baselines": 4,
    "supsup_core.train": 5,
    "supsup_core.infer": 6,
    "supsup_core.hopsupsup": 7,
    "supsup_core": 8,  # the package's own __init__
    "tools": 9,
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages (``pkg/__init__.py`` is ``pkg``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def rank(module: str) -> int:
    """The rank of the longest prefix of ``module`` named in RANKS."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return RANKS[prefix]
    raise AssertionError(f"{module} has no place in RANKS; add its subpackage to the data flow")


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (the submodule where ``from pkg import sub`` names one)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES or target.split(".")[0] == "click":
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    modules = set(files)
    return {name: imports_of(path, name, modules) for name, path in files.items()}


GRAPH = import_graph()


def test_the_graph_sees_every_package_and_some_imports():
    # guards the walk itself: a broken parser would find no edges and pass everything below
    assert {"hopfield_masks.memory", "supsup_core.train.runs", "tools.cli"} <= set(GRAPH)
    assert "supsup_core.nn.layers" in GRAPH["supsup_core.train.training"] or any(
        t.startswith("supsup_core.nn") for t in GRAPH["supsup_core.train.training"]
    )


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_down_the_data_flow(module):
    upward = [
        target for target in sorted(GRAPH[module])
        if not target.startswith("click") and rank(target) > rank(module)
    ]
    assert not upward, f"{module} imports {upward}, which lie above it in the data flow ({RANKS})"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith("tools")))
def test_library_code_never_imports_the_command_line_or_click(module):
    bad = [t for t in GRAPH[module] if t.split(".")[0] in ("tools", "click")]
    assert not bad, f"{module} imports {bad}: library code must not depend on the CLI"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_two_modules_import_each_other():
    # a package's __init__ imports its modules; they import their siblings by module, never through the
    # package (``from supsup_core.nn import modes`` is an edge to supsup_core.nn.modes), so that is no cycle
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", sorted(
    str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")
))
def test_init_files_only_reexport(package):
    tree = ast.parse((ROOT / package).read_text())
    body = tree.body[1:] if tree.body and isinstance(tree.body[0], ast.Expr) else tree.body
    for node in body:
        is_all = isinstance(node, (ast.Assign, ast.AnnAssign)) and "__all__" in ast.unparse(node).split("=")[0]
        assert isinstance(node, (ast.Import, ast.ImportFrom)) or is_all, (
            f"{package} line {node.lineno}: an __init__.py only re-exports names and sets __all__"
        )
    assert any(
        isinstance(node, (ast.Assign, ast.AnnAssign)) and "__all__" in ast.unparse(node).split("=")[0] for node in body
    ), f"{package} sets no __all__"
