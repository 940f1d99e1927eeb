"""The library's shape: no import cycle between rlland modules, no private name imported from another module,
storage below the driver, and thin experiment scripts. Static checks on the source (nothing is imported)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rlland"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def top_level_imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of the imports executed when the module is imported (module-level statements,
    including those inside module-level if/try blocks; imports inside functions run later and cannot cycle)."""
    out = []

    def visit(stmts):
        for node in stmts:
            if isinstance(node, ast.Import):
                out.extend((a.name, []) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.append((node.module, [a.name for a in node.names]))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)

    visit(ast.parse(path.read_text()).body)
    return out


def all_imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def resolve(module: str, names: list[str]) -> set[str]:
    """The rlland modules an import statement depends on: ``from rlland import train`` on rlland.train, ``from
    rlland.a import f`` on rlland.a (parent packages are loaded first by Python whatever the statement, so they
    are not edges)."""
    if not module.startswith("rlland"):
        return set()
    submodules = {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES}
    attributes = len(submodules) < len(names) or not names
    return submodules | ({module} if attributes and module in MODULES else set())


def graph() -> dict[str, set[str]]:
    g = {}
    for name, path in MODULES.items():
        deps = set()
        for module, names in top_level_imports(path):
            deps |= resolve(module, names)
        g[name] = {d for d in deps if d != name}
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def dfs(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(g.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                cycle = dfs(v)
                if cycle:
                    return cycle
        state[u] = 2
        stack.pop()
        return None

    for u in sorted(g):
        if u not in state:
            cycle = dfs(u)
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(graph()) is None, f"import cycle: {' -> '.join(find_cycle(graph()))}"


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("top", ["rlland", "experiments", "benchmarks", "tests"])
def test_no_private_name_imported_from_another_module(top):
    bad = []
    for path in sorted((ROOT / top).glob("**/*.py")):
        if "_peers" in path.parts:
            continue
        for module, names in all_imports(path):
            if not module.startswith("rlland"):
                continue
            private_module = any(p.startswith("_") and p != "__init__" for p in module.split("."))
            private_names = [n for n in names if n.startswith("_")]
            if private_module or private_names:
                bad.append(f"{path.relative_to(ROOT)}: from {module} import {', '.join(names)}")
    assert not bad, "private imports:\n" + "\n".join(bad)


def test_storage_never_imports_the_drivers():
    """checkpoint.py is orbax only; runs.py and loop.py sit below the drivers that use them."""
    drivers = {"rlland.train", "rlland.qd.driver", "rlland.runs", "rlland.loop"}
    for name in ("rlland.checkpoint", "rlland.sinks"):
        deps = set()
        for module, names in all_imports(MODULES[name]):
            deps |= resolve(module, names)
        assert not deps & drivers, f"{name} imports {sorted(deps & drivers)}"
    for module, names in all_imports(MODULES["rlland.qd.driver"]):
        assert "rlland.train" not in resolve(module, names), "the QD driver imports rlland.train"


def test_experiment_scripts_are_thin():
    """Library logic lives in rlland/: every experiment script is a shim of tens of lines."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "experiments").glob("*.py")}
    assert sizes and all(n <= 100 for n in sizes.values()), sizes


def test_experiment_scripts_have_configs():
    """Every experiment reads its settings from a config file in configs/ (train, qd and the analyses)."""
    configs = {p.stem for p in (ROOT / "configs").glob("*.py")}
    needed = {"train", "qd", "purd", "interpolate", "reject", "subspaces", "representation", "regions"}
    assert needed <= configs, sorted(needed - configs)
