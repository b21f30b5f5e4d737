"""plan-deploy: hardware-aware deployment planner for open-weight LLMs."""

__version__ = "0.1.0"
