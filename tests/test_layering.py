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


def top_imports(path: Path) -> set[str]:
    """Top-level packages imported at module level (imports inside functions are the allowed lazy ones)."""
    top = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            top.add(node.module.split(".")[0])
    return top


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


def test_subpackages_keep_click_to_commands_and_print_nothing():
    for path in PLANNER.rglob("*.py"):
        if path.parent == PLANNER:
            continue
        rel = path.relative_to(PLANNER)
        if rel.parts[0] != "commands":
            assert "click" not in _imports(path), rel
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        assert not calls, rel


def test_http_and_heavy_libraries_stay_out_of_the_planning_path():
    """Importing the CLI and running `plan` loads no HTTP client, numpy, gguf, hub or llama.cpp binding."""
    import subprocess
    import sys

    code = ("import sys; from planner.cli import main\n"
            "try:\n    main(['plan', '--machine', 'tests/machines/gpu-24gb.yaml', '--format', 'json'])\n"
            "except SystemExit:\n    pass\n"
            "heavy = {'httpx', 'httpx2', 'httpcore', 'httpcore2', 'numpy', 'gguf', 'huggingface_hub', 'xllamacpp',"
            " 'platformdirs'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PLANNER.parent, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "[]", r.stderr


def test_model_sources_import_no_heavy_library_at_module_level():
    """Header readers stay fast: gguf/numpy only in tests, huggingface_hub only inside hub.py."""
    for path in (PLANNER / "sources").glob("*.py"):
        tree = ast.parse(path.read_text())
        top = top_imports(path)
        assert not top & {"gguf", "numpy", "huggingface_hub", "httpx", "requests", "click"}, (path.name, top)
        everywhere = _imports(path)
        assert "huggingface_hub" not in everywhere or path.name == "hub.py", path.name
        assert not everywhere & {"gguf", "numpy", "click"}, path.name
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        assert not calls, path.name


def test_the_planning_path_imports_no_heavy_library_at_module_level():
    heavy = {"numpy", "gguf", "huggingface_hub", "httpx", "xllamacpp", "requests", "platformdirs"}
    for name in ("catalog.py", "catalog_cache.py", "convert.py", "memory.py", "recommend.py", "launch.py",
                 "cpu_repack.py", "bandwidth.py", "quality.py"):
        top = top_imports(PLANNER / name)  # module level only: imports inside functions are fine
        assert not top & heavy, (name, top & heavy)


def test_quality_is_pure_and_imports_nothing_heavy_at_module_level():
    top = top_imports(PLANNER / "quality.py")  # module level only; yaml is imported inside the loader
    assert top <= {"__future__", "functools", "math", "dataclasses", "pathlib", "typing"}, top


def test_the_planner_never_imports_the_test_server():
    """llama.cpp's server from the xllamacpp wheel is for tests; the planner checks launch commands
    against recorded option tables (planner/runtimes/flags.py), never by starting a runtime."""
    for path in PLANNER.rglob("*.py"):
        assert "xllamacpp" not in _imports(path), path.name
