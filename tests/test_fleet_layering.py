"""Module boundaries of planner/fleet (the rules of tests/test_layering.py, applied to the package)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .test_layering import top_imports

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "planner" / "fleet"
HEAVY = ("httpx", "numpy", "gguf", "huggingface_hub", "xllamacpp", "pynvml", "psutil")


def test_fleet_modules_keep_the_rules():
    files = sorted(FLEET.glob("*.py"))
    assert {p.name for p in files} >= {"fleet.py", "placement.py", "commands.py", "plan.py", "render.py"}
    # the command bodies live with the other commands (planner/commands/fleet.py): click stays there
    for path in [*files, ROOT / "planner" / "commands" / "fleet.py"]:
        imports = top_imports(path)
        assert not imports & {"pynvml", "psutil", "amdsmi", "subprocess", *HEAVY}, path.name
        if path.parent.name != "commands":
            assert "click" not in imports, path.name
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        assert not calls, path.name


def test_can_run_fleet_imports_nothing_heavy():
    code = ("import sys\nfrom planner.cli import main\n"
            "try:\n    main(['can-run', 'llama-3.1-405b', '--quant', 'BF16', '--fleet', sys.argv[1],"
            " '--format', 'json'])\nexcept SystemExit:\n    pass\n"
            f"bad = [m for m in {HEAVY!r} if m in sys.modules]\nsys.stderr.write(repr(bad))\n")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "tests/fixtures/fleet-h100x8-ib")],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stderr.strip().endswith("[]"), out.stderr
    assert '"multi_node"' in out.stdout
