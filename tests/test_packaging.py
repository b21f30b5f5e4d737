"""The wheel carries every package the planner imports (a package left out of pyproject.toml
installs, but `plan-deploy` then fails with ModuleNotFoundError outside the checkout)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages\s*=\s*\[(.*?)\]", text, flags=re.S | re.M)
    assert block, "pyproject.toml lists no packages"
    return set(re.findall(r'"([^"]+)"', block.group(1)))


def test_every_planner_package_is_in_the_wheel():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "planner").rglob("__init__.py")}
    missing = found - _declared()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_shipped_data_files_are_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"*.yaml"' in text and "runtime_flags/*.yaml" in text
    assert any((ROOT / "data" / "runtime_flags").glob("*.yaml"))
