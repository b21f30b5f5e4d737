"""Serving plans (--concurrency N): memory for N sequences, each runtime's batching, batched decode
speed against published runs, the ranking at load, and the usage errors."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

from planner import catalog, hardware, recommend, serving
from planner.recommend import Request

from .test_cli import MACHINES, run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def _machine(cat, name):
    return hardware.enrich(hardware.load_machine(str(MACHINES / f"{name}.yaml")), cat)


def _best(cat, machine, model, **req):
    res = recommend.plan(cat, machine, Request(models=(model,), **req))
    return recommend.one_per_model(res.plans)[0], res


def test_one_user_at_load_is_the_single_user_estimate(cat):
    m = _machine(cat, "gpu-24gb")
    alone, _ = _best(cat, m, "llama-3.1-8b", runtimes=("llama.cpp",), quants=("Q4_K_M",))
    one, _ = _best(cat, m, "llama-3.1-8b", runtimes=("llama.cpp",), quants=("Q4_K_M",), concurrency=1)
    assert one.serving.per_user.expected == pytest.approx(alone.speed.expected)
    assert one.serving.aggregate_tokens_per_s == pytest.approx(alone.speed.expected)


def test_more_users_share_the_step_more_tokens_in_all_fewer_each(cat):
    m = _machine(cat, "gpu-24gb")
    figs = []
    for n in (1, 4, 16):
        p, _ = _best(cat, m, "llama-3.1-8b", runtimes=("llama.cpp",), quants=("Q4_K_M",), concurrency=n,
                     context=4096)
        figs.append((p.serving.per_user_tokens_per_s, p.serving.aggregate_tokens_per_s, p.estimate.kv_cache_bytes))
    assert figs[0][0] > figs[1][0] > figs[2][0]  # each user slower
    assert figs[0][1] < figs[1][1] < figs[2][1]  # more in all
    assert figs[1][2] == 4 * figs[0][2] and figs[2][2] == 16 * figs[0][2]  # KV for every sequence


def test_the_memory_holds_what_max_concurrency_says(cat):
    m = _machine(cat, "gpu-24gb")
    p, _ = _best(cat, m, "llama-3.1-8b", runtimes=("llama.cpp",), quants=("Q4_K_M",), concurrency=2, context=8192)
    cap = p.serving.max_concurrency
    assert cap and cap > 2
    at_cap, _ = _best(cat, m, "llama-3.1-8b", runtimes=("llama.cpp",), quants=("Q4_K_M",), concurrency=cap,
                      context=8192)
    assert at_cap.placement.kind == "gpu"
    over = recommend.plan(cat, m, Request(models=("llama-3.1-8b",), runtimes=("llama.cpp",), quants=("Q4_K_M",),
                                          concurrency=cap + 1, context=8192))
    assert all(p.placement.kind != "gpu" for p in over.plans)


def test_moe_batches_read_more_experts_dense_ones_do_not(cat):
    dense, moe = cat.model("llama-3.1-8b").arch, cat.model("qwen3-30b-a3b").arch
    assert serving.batch_read_fraction(dense, 32) == serving.batch_read_fraction(dense, 1)
    one, many = serving.batch_read_fraction(moe, 1), serving.batch_read_fraction(moe, 32)
    assert one < many <= 1.0
    assert serving.batch_read_fraction(moe, 32, 0.54) < many  # the effective batch overlaps


def test_batched_speed_matches_published_runs_in_and_out_of_sample(cat):
    sys.path.insert(0, str(ROOT))
    from scripts import calibrate_serving as cs

    runs = cs.load_runs()
    ratio = serving.batch_decode_ratio(cat)
    inside = [abs(e) for r in runs if r.get("fit") for e in cs.errors(cs.scaling_points(cat, r, ratio))]
    held = [abs(e) for r in runs if not r.get("fit") for e in cs.errors(cs.scaling_points(cat, r, ratio))]
    assert len(held) >= 40
    assert statistics.median(inside) < 0.06  # measured: 4.7%
    assert statistics.median(held) < 0.15  # measured: 12.1%
    # without the batch terms (memory only, uniform routing) the held-out runs are far off: the check can fail
    memory_only = [abs(e) for r in runs if not r.get("fit") for e in cs.errors(cs.scaling_points(cat, r, 1e9, 1.0))]
    assert statistics.median(memory_only) > 0.15


def test_runtimes_launch_for_the_load(cat):
    m = _machine(cat, "h100x8")
    res = recommend.plan(cat, m, Request(models=("llama-3.1-8b",), concurrency=1100, context=1024))
    by_rt = {}
    for p in sorted(res.plans, key=recommend.best_per_model_key):
        by_rt.setdefault(p.runtime.id, p)
    llama = by_rt["llama.cpp"].launch.argv
    assert llama[llama.index("-np") + 1] == "1100" and llama[llama.index("-c") + 1] == str(1100 * 1024)
    assert by_rt["ollama"].launch.env.get("OLLAMA_NUM_PARALLEL") == "1100"
    vllm = by_rt["vllm"].launch.argv
    assert vllm[vllm.index("--max-num-seqs") + 1] == "1100"  # above the 1,024 default on an H100
    assert "transformers" not in by_rt
    small = recommend.plan(cat, m, Request(models=("llama-3.1-8b",), runtimes=("vllm",), concurrency=32))
    assert all("--max-num-seqs" not in p.launch.argv for p in small.plans)  # within the default


def test_transformers_says_why_it_does_not_serve(cat):
    m = _machine(cat, "h100x8")
    res = recommend.plan(cat, m, Request(models=("llama-3.1-8b",), runtimes=("transformers",), concurrency=4),
                         explain=True)
    assert not res.plans
    assert any("one-request script" in r["reason"] for r in res.rejected)


def test_eight_h100s_serve_70b_with_tensor_parallel_at_32_users():
    code, out, err = run("can-run", "llama-3.3-70b", "--machine", str(MACHINES / "h100x8.yaml"),
                         "--concurrency", "32", "--format", "json")
    assert code == 0, err
    best = json.loads(out)["best"]
    assert best["runtime"] in ("vllm", "sglang") and best["tensor_parallel"] >= 2
    s = best["serving"]
    assert s["concurrency"] == 32 and s["aggregate_tokens_per_s"] > 1000
    assert s["max_concurrency"] >= 32
    code, text, _ = run("can-run", "llama-3.3-70b", "--machine", str(MACHINES / "h100x8.yaml"), "--concurrency", "32")
    assert "32 users" in text and "tokens/s in all" in text


@pytest.mark.parametrize("args, needle", [
    (["plan", "--concurrency", "0"], "--concurrency"),
    (["can-run", "llama-3.1-8b", "--concurrency", "-3"], "--concurrency"),
    (["plan", "--min-tps", "-1"], "--min-tps"),
    (["plan", "--use-case", "poetry"], "chat"),
    (["hardware", "llama-3.1-8b", "--concurrency", "0"], "--concurrency"),
])
def test_bad_load_arguments_are_usage_errors(args, needle):
    code, out, err = run(*args, "--gpu", "RTX 4090") if args[0] != "hardware" else run(*args)
    assert code == 2
    assert err.startswith("Error:") and needle in err and "Traceback" not in err + out


def test_a_published_vllm_sweep_held_out():
    import yaml

    run_ = yaml.safe_load((ROOT / "tests" / "data" / "batch_runs.yaml").read_text())["online"][0]
    for n, tpot_ms, _ in run_["rows"][:3]:
        code, out, err = run("can-run", run_["model"], "--gpu", run_["gpu"], "--runtime", "vllm", "--quant",
                             run_["quant"], "--concurrency", str(n), "--context", "2k", "--format", "json")
        assert code == 0, err
        per_user = json.loads(out)["best"]["serving"]["per_user_tokens_per_s"]["expected"]
        measured = 1000 / tpot_ms
        assert abs(per_user - measured) / measured < 0.3, (n, per_user, measured)  # measured: -21%, -25%, 0%


def test_a_server_that_does_not_fit_usably_is_told_the_better_ways():
    # 350 users of 2k tokens on one H100: 350 f16 KV caches leave no room on the GPU for a usable
    # plan; the answer names the quantized KV caches that fit, and how many users fit as asked
    code, out, err = run("can-run", "llama-3.1-8b", "--gpu", "h100-sxm", "--concurrency", "350", "--context", "2k",
                         "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert not doc["best"]["interactive"] or doc["best"]["quant"].startswith(("IQ1", "IQ2", "Q2"))
    fits = " | ".join(doc["would_fit_with"])
    assert "--kv-cache-type fp8" in fits and "--kv-cache-type q8_0" in fits and "fewer users" in fits


def test_fixed_slots_say_that_more_users_wait():
    code, out, err = run("can-run", "llama-3.3-70b", "--machine", str(MACHINES / "h100x8.yaml"), "--concurrency",
                         "32", "--runtime", "llama.cpp", "--format", "json")
    assert code == 0, err
    notes = " ".join(json.loads(out)["best"]["notes"])
    assert "fixes 32 slots" in notes and "request 33 waits" in notes


def test_offload_batches_the_gpu_part_only(cat):
    m = hardware.enrich(hardware.hypothetical(cat, gpu="RTX 4090", vram=None, ram=64 * 2**30, cpu_cores=None), cat)
    req = dict(runtimes=("llama.cpp",), quants=("Q8_0",), context=131072)
    one, _ = _best(cat, m, "llama-3.1-8b", concurrency=1, **req)
    assert one.placement.kind == "partial-offload"
    assert one.serving.per_user.expected == pytest.approx(one.speed.expected)
    # the same placement at 4 users: more in all than one stream (the GPU's layers batch), less
    # than 4x (the RAM part does not)
    rt = one.runtime
    four = serving.estimate(one.estimate, one.model, one.placement, m, rt, cat, 4, one.speed, "4 slots")
    assert one.speed.expected < four.aggregate_tokens_per_s < 4 * one.speed.expected
    assert "RAM part" in four.bound


def test_ollama_serves_some_architectures_one_request_at_a_time(cat):
    m = _machine(cat, "gpu-24gb")
    res = recommend.plan(cat, m, Request(models=("qwen3.5-9b",), runtimes=("ollama",), concurrency=4), explain=True)
    assert not res.plans and any("one request at a time" in r["reason"] for r in res.rejected)
    alone = recommend.plan(cat, m, Request(models=("qwen3.5-9b",), runtimes=("ollama",), concurrency=1))
    assert alone.plans


def test_can_run_says_why_its_answer_beats_the_single_gpu_one():
    code, out, _ = run("can-run", "llama-3.3-70b", "--machine", str(MACHINES / "h100x8.yaml"), "--concurrency", "1")
    assert code == 0
    import re

    assert re.search(r"chosen over Q\w+ on ollama \(gpu\) on throughput: 52 tokens/s at 1 user vs \d+ tokens/s at 1 user",
                     out), out


def test_a_server_runs_the_fastest_quantization_within_the_loss_tolerance():
    # 16 users of Llama-3.1-8B on one RTX 4090: Q8_0 only fits with layers in RAM (7 tokens/s each),
    # Q4_K_M (0.6 points less, within the 1-point tolerance) runs on the GPU: the server takes it
    code, out, err = run("can-run", "llama-3.1-8b", "--gpu", "RTX 4090", "--concurrency", "16", "--format", "json")
    assert code == 0, err
    best = json.loads(out)["best"]
    assert best["quant"] == "Q4_K_M" and best["placement"] == "gpu"
    assert best["serving"]["per_user_tokens_per_s"]["expected"] > 40


def test_search_and_full_evaluation_agree_for_servers(cat):
    m = hardware.hypothetical(cat, gpu="RTX 4090", vram=None, ram=64 * 2**30, cpu_cores=None)
    m = hardware.enrich(m, cat)
    req = Request(concurrency=8)
    fast = recommend.one_per_model(recommend.plan(cat, m, req, best_only=True).plans)
    full = recommend.one_per_model(recommend.plan(cat, m, req, explain=True).plans)
    assert [(p.model.id, p.quant, p.runtime.id) for p in fast] == [(p.model.id, p.quant, p.runtime.id) for p in full]
