"""Module boundaries that keep the planner easy to change (design/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PLANNER = Path(__file__).resolve().parent.parent / "planner"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_probe_touches_hardware_libraries():
    for path in PLANNER.glob("*.py"):
        hardware = _imports(path) & {"pynvml", "psutil", "amdsmi", "subprocess"}
        assert path.name == "probe.py" or not hardware, (path.name, hardware)


def test_only_the_cli_imports_click_and_library_code_does_not_print():
    for path in PLANNER.glob("*.py"):
        if path.name == "cli.py":
            continue
        assert "click" not in _imports(path), path.name
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        assert not calls, path.name


def test_the_planning_path_imports_no_heavy_library_at_module_level():
    heavy = {"numpy", "gguf", "huggingface_hub", "httpx", "xllamacpp", "requests", "platformdirs"}
    for name in ("catalog.py", "catalog_cache.py", "convert.py", "memory.py", "recommend.py", "launch.py"):
        tree = ast.parse((PLANNER / name).read_text())
        top = set()
        for node in tree.body:  # module level only: imports inside functions are fine
            if isinstance(node, ast.Import):
                top |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                top.add(node.module.split(".")[0])
        assert not top & heavy, (name, top & heavy)
