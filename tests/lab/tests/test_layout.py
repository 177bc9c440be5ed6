"""The lab's layout is its architecture: one sub-package per emulated part, dependencies pointing one way
(CLI -> daemon -> parts -> plumbing) and no import circles (tests/lab/DEVELOPING.md has the map)."""
from __future__ import annotations

import ast
from pathlib import Path

import msr_lab

PKG = Path(msr_lab.__file__).parent
# What each sub-package may import besides itself; the top-level modules (CLI, daemon, ...) may import all.
ALLOWED = {
    "common": set(),
    "nodes": {"common"},
    "engine": {"common"},
    "mke": {"common", "engine"},
    "msr": {"common", "mke"},
    "bootstrapper": {"common", "engine"},
    "lb": {"common", "nodes"},
    "faults": {"common", "nodes", "lb", "mke"},
}
TOP = {"cli", "daemon", "lifecycle", "control", "inventory"}


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(["msr_lab", *parts])] = path
    return out


def imports(path: Path) -> set[str]:
    """Every msr_lab module this file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; use absolute msr_lab.* imports"
            if node.module and node.module.startswith("msr_lab"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("msr_lab"))
    return found


MODULES = modules()
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_module_is_in_a_part_or_on_top():
    loose = [m for m in MODULES if m.count(".") == 1 and part(m) not in ALLOWED and part(m) not in TOP]
    assert loose == [], f"modules outside the sub-packages: {loose}"


def test_parts_import_only_what_lies_below_them():
    wrong = []
    for module, deps in GRAPH.items():
        if part(module) in TOP or module == "msr_lab":
            continue
        for dep in deps:
            if part(dep) != part(module) and part(dep) not in ALLOWED[part(module)]:
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_no_import_circles():
    done, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in done:
            return
        stack.append(m)
        for dep in sorted(GRAPH.get(m, ())):
            visit(dep)
        stack.pop()
        done.add(m)

    for m in sorted(GRAPH):
        visit(m)
    assert cycles == []


def test_each_part_says_what_it_emulates():
    for name in ALLOWED:
        doc = ast.get_docstring(ast.parse((PKG / name / "__init__.py").read_text())) or ""
        assert len(doc) > 40, f"msr_lab/{name}/__init__.py needs a docstring saying what it emulates"
