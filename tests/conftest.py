"""Test-wide settings: the compiled catalog goes to a temporary directory, never the user's cache."""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config):
    # Set before any test module imports the planner (some build their parameters from the catalog).
    if "PLAN_DEPLOY_CACHE_DIR" not in os.environ:
        os.environ["PLAN_DEPLOY_CACHE_DIR"] = tempfile.mkdtemp(prefix="plan-deploy-test-cache-")
