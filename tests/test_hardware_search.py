"""`plan-deploy hardware MODEL`: the reverse search, by the same engine as can-run."""

from __future__ import annotations

import json

import pytest

from planner import catalog, hardware_search

from .test_cli import run


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def test_llama_70b_at_20_tps_smallest_first_and_checkable(cat):
    opts = hardware_search.search(cat, cat.model("llama-3.3-70b"), min_tps=20)
    assert opts
    mems = [o.memory_bytes for o in opts]
    assert mems == sorted(mems)  # smallest sufficient configuration first
    names = {o.config for o in opts}
    assert "h100-sxm" in names and "h100-sxm x2" not in names  # the smallest count of a card only
    for o in opts:
        p = o.plan
        assert p.speed.expected >= 20 and p.interactive and not p.low_bit
        assert p.placement.kind in ("gpu", "multi-gpu", "unified")
        # bandwidth arithmetic bounds every figure: never faster than reading the weights at the
        # full bandwidth of the GPUs that share them
        share = p.placement.tensor_parallel or 1
        read = p.estimate.weights_read_bytes or p.estimate.weights_bytes
        assert p.speed.expected <= o.bandwidth_bytes_per_s * share / read


def test_low_bit_only_when_asked(cat):
    default = hardware_search.search(cat, cat.model("llama-3.3-70b"))
    assert not any(o.plan.low_bit for o in default)
    asked = hardware_search.search(cat, cat.model("llama-3.3-70b"), quants=("IQ2_XS",))
    assert asked and all(o.plan.quant == "IQ2_XS" for o in asked)
    assert min(o.memory_bytes for o in asked) < min(o.memory_bytes for o in default)


def test_cpu_boxes_and_macs_are_configurations(cat):
    opts = hardware_search.search(cat, cat.model("qwen2.5-7b"))
    kinds = {o.kind for o in opts}
    assert {"gpu", "unified", "cpu"} <= kinds
    cpu = [o for o in opts if o.kind == "cpu"]
    assert cpu[0].config == "CPU, 16 GiB RAM" and cpu[0].plan.placement.kind == "cpu"


def test_cli_table_json_and_exit_codes():
    code, out, err = run("hardware", "llama-3.3-70b", "--min-tps", "20", "--top", "3")
    assert code == 0 and "smallest first" in out and "check: decode tokens/s" in out
    code, out, _ = run("hardware", "llama-3.3-70b", "--min-tps", "20", "--format", "json")
    doc = json.loads(out)
    assert doc["model"] == "llama-3.3-70b" and doc["configurations"][0]["bytes_per_token"] > 0
    # Kimi K2 unquantized (about 2 TB) exceeds every catalog box of 8 GPUs (8 x B200: 1434 GiB)
    code, out, _ = run("hardware", "kimi-k2", "--quant", "BF16")
    assert code == 3 and "no catalog configuration runs it" in out
    code, _, err = run("hardware", "llama-3.3-70b", "--min-tps", "-3")
    assert code == 2 and err.startswith("Error:")
