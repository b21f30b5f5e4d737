"""Why a plan ranks where it does: the ranking key's terms in words (planner/explain.py), can-run
--explain and plan --why."""

from __future__ import annotations

import json

import pytest

from planner import catalog, explain, hardware, recommend
from planner.recommend import Request

from .test_cli import MACHINES, run


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def _machine(cat, name):
    return hardware.enrich(hardware.load_machine(MACHINES / f"{name}.yaml"), cat)


def _plans(cat, name, **request):
    return recommend.plan(cat, _machine(cat, name), Request(**request), explain=True).plans


def _one(plans, model, runtime, quant):
    (p,) = [p for p in plans if (p.model.id, p.runtime.id, p.quant) == (model, runtime, quant)]
    return p


@pytest.fixture(scope="module")
def h100_70b(cat):
    return _plans(cat, "h100x8", models=("llama-3.3-70b",))


def test_speed_decides_between_vllm_fp8_tensor_parallel_and_ollama_q8(h100_70b):
    vllm = _one(h100_70b, "llama-3.3-70b", "vllm", "FP8")
    ollama = _one(h100_70b, "llama-3.3-70b", "ollama", "Q8_0")
    assert vllm.placement.tensor_parallel
    term, a, b = explain.deciding_term(ollama, vllm)
    assert term == "speed"
    assert a == f"{ollama.speed.expected:.1f} tokens/s" and b == f"{vllm.speed.expected:.1f} tokens/s"
    assert explain.deciding_term(vllm, ollama)[0] == "speed"  # symmetric: the same term either way


def test_usable_decides_when_one_plan_is_too_slow(h100_70b):
    slow = _one(h100_70b, "llama-3.3-70b", "transformers", "BF16")
    fast = _one(h100_70b, "llama-3.3-70b", "ollama", "Q8_0")
    assert not slow.interactive and fast.interactive
    term, a, b = explain.deciding_term(slow, fast, threshold=5)
    assert (term, a.split(" (")[0], b.split(" (")[0]) == ("usable", "too slow", "yes")
    assert ">= 5" in b


@pytest.fixture(scope="module")
def gpu24(cat):
    return recommend.one_per_model(_plans(cat, "gpu-24gb"))


def test_quality_decides_between_models_of_different_quality(gpu24):
    by_id = {p.model.id: p for p in gpu24}
    big, small = by_id["qwen3-32b"], by_id["qwen3-14b"]
    term, a, b = explain.deciding_term(small, big)
    assert term == "quality"
    assert a.startswith("MMLU ") and b.startswith("MMLU ") and a != b


def test_plans_that_tie_but_for_ids_name_the_id_term(gpu24):
    by_id = {p.model.id: p for p in gpu24}
    assert explain.deciding_term(by_id["qwen2.5-32b"], by_id["deepseek-r1-distill-qwen-32b"])[0] == "model id"
    p = by_id["qwen3-32b"]
    assert explain.deciding_term(p, p)[0] == "model id"


@pytest.mark.parametrize("machine,concurrency", [("gpu-24gb", None), ("h100x8", None), ("cpu-box", None),
                                                 ("m3-max", None), ("gpu-24gb", 16), ("h100x8", 64)])
def test_one_value_per_key_term(cat, machine, concurrency):
    plans = _plans(cat, machine, concurrency=concurrency)
    assert plans
    for p in plans:
        values = explain.term_values(p)
        assert len(values) == len(recommend.plan_key(p)) == len(recommend.key_terms(p))
        assert [n for n, _ in values] == list(recommend.key_terms(p))
        assert all(v for _, v in values)
        within = explain.term_values(p, explain.WITHIN_MODEL)
        flat = [x for v in recommend.best_per_model_key(p) for x in (v if isinstance(v, tuple) else (v,))]
        assert [n for n, _ in within] == list(recommend.best_key_terms(p)) and len(within) == len(flat)
    if concurrency:
        assert any(p.serving is not None and recommend.key_terms(p) == recommend.SERVING_TERMS for p in plans)


def test_the_deciding_term_is_where_the_keys_first_differ(gpu24):
    for a, b in zip(gpu24, gpu24[1:]):
        term, _, _ = explain.deciding_term(b, a)
        i = recommend.key_terms(a).index(term)
        ka, kb = recommend.plan_key(a), recommend.plan_key(b)
        assert ka[:i] == kb[:i] and ka[i] < kb[i]


# ---------------------------------------------------------------- the command line


def test_plan_why_names_the_plans_above_with_their_terms():
    code, out, err = run("plan", "--why", "llama-3.1-8b", "--machine", str(MACHINES / "gpu-24gb.yaml"))
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "llama-3.1-8b: #" in out and " models — best plan " in out
    above = [line for line in out.splitlines() if line.startswith("    #")]
    assert len(above) == 5 and all(": on " in line and " vs " in line for line in above)

    code, out, _ = run("plan", "--why", "llama3.1:8b", "--machine", str(MACHINES / "gpu-24gb.yaml"),
                       "--format", "json", "--top", "3")
    why = json.loads(out)["why"]
    assert why["model"] == "llama-3.1-8b" and why["plan"]["model"] == "llama-3.1-8b"
    assert [a["rank"] for a in why["above"]] == [why["rank"] - 1, why["rank"] - 2, why["rank"] - 3]
    assert [k["term"] for k in why["key"]] == list(recommend.INTERACTIVE_TERMS)
    for a in why["above"]:
        assert a["term"] in recommend.INTERACTIVE_TERMS and a["value"] != a["model_value"]


def test_plan_why_with_concurrency_explains_the_serving_key():
    code, out, err = run("plan", "--why", "qwen3-8b", "--machine", str(MACHINES / "h100x8.yaml"),
                         "--concurrency", "32", "--format", "json")
    assert code == 0, err
    why = json.loads(out)["why"]
    assert [k["term"] for k in why["key"]] == list(recommend.SERVING_TERMS)
    assert why["key"][0]["term"] == "usable at load" and " each at 32 users" in why["key"][0]["value"]
    assert all(a["term"] in recommend.SERVING_TERMS for a in why["above"])


def test_plan_why_for_a_model_without_a_plan_says_why_not():
    code, out, _ = run("plan", "--why", "llama-3.1-405b", "--machine", str(MACHINES / "gpu-24gb.yaml"),
                       "--format", "json")
    why = json.loads(out)["why"]
    assert why["rank"] is None and why["plan"] is None and why["above"] == []
    assert any(w.startswith("llama.cpp ") and "needs" in w for w in why["why_not"])
    code, out, _ = run("plan", "--why", "llama-3.1-8b", "--licence", "permissive",
                       "--machine", str(MACHINES / "gpu-24gb.yaml"))
    assert "left out by --licence permissive" in out


@pytest.mark.parametrize("name,close", [("nonexistent-model", False), ("llama3.1-8bb", True)])
def test_plan_why_unknown_model_is_a_usage_error(name, close):
    code, out, err = run("plan", "--why", name, "--machine", str(MACHINES / "gpu-24gb.yaml"))
    assert code == 2
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: unknown model") and lines[1].startswith("Hint: ")
    if close:
        assert "llama-3.1-8b" in lines[1]


def test_can_run_explain_json_has_an_explain_field_per_option():
    args = ("can-run", "llama-3.3-70b", "--machine", str(MACHINES / "h100x8.yaml"), "--format", "json")
    code, out, err = run(*args, "--explain")
    assert code == 0, err
    options = json.loads(out)["options"]
    assert [(o["runtime"], o["quant"]) for o in options[:3]] == [("vllm", "FP8"), ("sglang", "FP8"),
                                                                   ("ollama", "Q8_0")]
    assert options[0]["explain"]["below_previous_on"] is None
    assert all(o["explain"]["below_previous_on"]["term"] for o in options[1:])
    assert options[2]["explain"]["below_previous_on"]["term"] == "speed"
    assert [k["term"] for k in options[0]["explain"]["key"]][:3] == ["usable", "precision", "placement"]
    assert "explain" not in json.loads(run(*args)[1])["options"][0]  # only when asked for

    code, out, _ = run(*args[:-2], "--explain")
    assert "#3 ollama Q8_0: below #2 on speed: " in out and " tokens/s vs " in out


def test_plan_explain_adds_the_key_of_the_first_plan():
    code, out, _ = run("plan", "--explain", "--top", "3", "--machine", str(MACHINES / "gpu-24gb.yaml"),
                       "--format", "json")
    plans = json.loads(out)["plans"]
    assert [k["term"] for k in plans[0]["explain"]["key"]] == list(recommend.INTERACTIVE_TERMS)
    assert plans[0]["explain"]["below_previous_on"] is None
    assert plans[1]["explain"]["below_previous_on"]["term"]
