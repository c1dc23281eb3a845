"""The layout's rules (docs/layout.md), checked on the source: scripts at the top, no import
circles, the library apart from the command line, the layer table written once."""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY_AT_TOP = {"model", "dataset"}            # the card's two modules; the rest are scripts
MAX_TOP_LEVEL_FILES = 12
SKIPPED = {".git", ".venv", "__pycache__", "test", "docs", "patches", "checkpoint", "sample"}


def project_modules(root=ROOT):
    """{dotted name: path} of every module of the project but the tests."""
    modules = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED and not d.startswith("."))
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def imported_modules(path, known):
    """The project modules ``path`` imports anywhere in it (inside functions too)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph(root=ROOT):
    modules = project_modules(root)
    return {name: imported_modules(path, modules) - {name} for name, path in modules.items()}


def circles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg.a import x\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n")
    assert circles(import_graph(str(tmp_path))) == [["pkg.a", "pkg.b"]]


def test_no_import_circles():
    graph = import_graph()
    assert len(graph) > 50 and "model" in graph["latents.synthesis"]
    assert circles(graph) == []


def test_the_top_level_holds_scripts_and_the_cards_two_modules():
    names = sorted(n[:-3] for n in os.listdir(ROOT) if n.endswith(".py"))
    assert len(names) <= MAX_TOP_LEVEL_FILES, names
    assert LIBRARY_AT_TOP <= set(names)
    for name in set(names) - LIBRARY_AT_TOP:
        with open(os.path.join(ROOT, f"{name}.py")) as f:
            assert 'if __name__ == "__main__":' in f.read(), f"{name}.py is not a script"


def test_no_script_imports_another_and_the_library_never_imports_the_command_line():
    graph = import_graph()
    scripts = {n[:-3] for n in os.listdir(ROOT) if n.endswith(".py")} - LIBRARY_AT_TOP
    for module, imported in graph.items():
        assert not imported & scripts, f"{module} imports the script(s) {imported & scripts}"
        if module not in scripts and not module.startswith("tools"):
            assert "runtime.cli" not in imported, f"{module} imports the command-line layer"


@pytest.mark.parametrize("module", ["model", "dataset", "latents.synthesis", "training.trainer",
                                    "ops.cpu_generation", "files.checkpoint"])
def test_library_modules_need_no_import_for_its_side_effects(module):
    """Jittor's set-up is runtime.jittor_setup.setup(), called by the scripts: a library module
    neither imports the set-up module nor runs it."""
    with open(project_modules()[module]) as f:
        source = f.read()
    assert "jittor_setup" not in source and "jittor_env" not in source


def test_the_layer_table_is_written_once():
    table = re.compile(r"""["']coarse["']\s*:\s*\(\s*0\s*,\s*1\s*\)""")
    holders = [name for name, path in project_modules().items()
               if table.search(open(path).read())]
    assert holders == ["networks.style_layers"]
