"""`bench` against replayed Ollama and LM Studio servers (real sockets), and every fault case."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from planner.cli import main

ROOT = Path(__file__).resolve().parent.parent
REPLAY = Path(__file__).resolve().parent / "replay"


@pytest.fixture
def server():
    s = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    s.start()
    yield s
    s.clear()
    if s.is_running():
        s.stop()


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def bench(capsys, *args: str) -> tuple[int, str, str]:
    """Run `plan-deploy bench ...` in this process; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(["bench", *args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def ollama(server: HTTPServer, chat=None) -> str:
    for name in ("version", "tags", "ps"):
        server.expect_request(f"/api/{name}").respond_with_data((REPLAY / "ollama" / f"{name}.json").read_text(),
                                                                 content_type="application/json")
    server.expect_request("/api/show", method="POST").respond_with_data(
        (REPLAY / "ollama" / "show.json").read_text(), content_type="application/json")
    body = (REPLAY / "ollama" / "chat.ndjson").read_text()
    server.expect_request("/api/chat", method="POST").respond_with_handler(
        chat or (lambda req: Response(iter(body.splitlines(keepends=True)), mimetype="application/x-ndjson")))
    return server.url_for("/").rstrip("/")


def lmstudio(server: HTTPServer, chat=None) -> str:
    server.expect_request("/v1/models").respond_with_data((REPLAY / "lmstudio" / "v1_models.json").read_text(),
                                                          content_type="application/json")
    server.expect_request("/api/v0/models").respond_with_data(
        (REPLAY / "lmstudio" / "api_v0_models.json").read_text(), content_type="application/json")
    body = (REPLAY / "lmstudio" / "chat.sse").read_text()
    server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
        chat or (lambda req: Response(iter([e + "\n\n" for e in body.split("\n\n") if e]),
                                      mimetype="text/event-stream")))
    return server.url_for("/v1")


def sse(events: list[str]):
    return lambda req: Response(iter(events), mimetype="text/event-stream")


# ---------------------------------------------------------------- replayed runtimes


def test_ollama_native_api_is_detected_and_counts_come_from_the_server(server, capsys):
    url = ollama(server)
    code, out, err = bench(capsys, url, "--requests", "2", "--format", "json", "--no-save")
    assert code == 0, err
    ep = json.loads(out)["endpoints"][0]
    assert ep["endpoint"]["api"] == "ollama" and ep["endpoint"]["runtime"] == "ollama"
    assert ep["endpoint"]["runtime_version"] == "0.5.1"
    assert ep["endpoint"]["model"] == "mistral:latest"  # the loaded model (/api/ps) first
    assert ep["endpoint"]["quant"] == "Q4_K_M"  # /api/show details.quantization_level
    level = ep["levels"][0]
    r = level["results"][0]
    # eval_count 282 from the final object, not the 7 streamed pieces
    assert r["completion_tokens"] == r["server_completion_tokens"] == 282 and r["prompt_tokens"] == 26
    assert r["server_decode_tokens_per_s"] == pytest.approx(282 / 4.535599, rel=1e-4)
    assert r["server_prefill_tokens_per_s"] == pytest.approx(26 / 0.342546, rel=1e-4)
    assert 0 < r["ttft_s"] <= r["e2e_s"]
    paris = [x for x in level["results"] if x["prompt"] == "capital-france"]
    assert paris[0]["correct"] is True
    chat = json.loads(server.log[-1][0].get_data())
    assert chat["options"]["temperature"] == 0 and chat["options"]["num_predict"] == 128 and chat["stream"] is True
    assert chat["messages"][0]["role"] == "system" and chat["messages"][0]["content"].startswith("[")


def test_each_request_has_its_own_prefix(server, capsys):
    url = ollama(server)
    code, _, err = bench(capsys, url, "--requests", "3", "--no-save", "--format", "json")
    assert code == 0, err
    systems = [json.loads(req.get_data())["messages"][0]["content"] for req, _ in server.log if req.path == "/api/chat"]
    assert len(systems) == 4 and len(set(systems)) == 4  # warm-up + 3, no shared prefix


def test_ollama_model_choice_and_unknown_model(server, capsys):
    url = ollama(server)
    code, out, _ = bench(capsys, url, "--model", "llama3.2", "--requests", "1", "--no-save", "--format", "json")
    assert code == 0 and json.loads(out)["endpoints"][0]["endpoint"]["model"] == "llama3.2:latest"
    code, out, err = bench(capsys, url, "--model", "nope:7b", "--no-save")
    assert code == 1 and out == ""
    assert err.splitlines() == [f"Error: {url} does not serve model 'nope:7b'",
                                "Hint: served: deepseek-r1:latest, llama3.2:latest, mistral:latest"]


def test_lm_studio_openai_api_is_recognised(server, capsys):
    url = lmstudio(server)
    code, out, err = bench(capsys, url, "--requests", "2", "--format", "json", "--no-save")
    assert code == 0, err
    ep = json.loads(out)["endpoints"][0]
    assert ep["endpoint"]["runtime"] == "lm-studio" and ep["endpoint"]["model"] == "meta-llama-3.1-8b-instruct"
    r = ep["levels"][0]["results"][0]
    assert r["completion_tokens"] == 53 and r["prompt_tokens"] == 24  # usage chunk, not 5 content chunks
    assert r["decode_tokens_per_s"] == pytest.approx(52 / (r["e2e_s"] - r["ttft_s"]), rel=0.05)
    body = json.loads(next(req for req, _ in server.log if req.path == "/v1/chat/completions").get_data())
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0 and body["max_tokens"] == 16  # the warm-up asks for few tokens


def test_prompts_file_and_accuracy(server, capsys, tmp_path):
    url = lmstudio(server)
    f = tmp_path / "p.jsonl"
    f.write_text('{"question": "Capital of France?", "expected": "paris"}\n'
                 '{"question": "Capital of Italy?", "regex": "\\\\bRome\\\\b"}\n')
    code, out, err = bench(capsys, url, "--prompts", str(f), "--requests", "4", "--format", "json", "--no-save")
    assert code == 0, err
    acc = json.loads(out)["endpoints"][0]["levels"][0]["accuracy"]
    assert acc == {"correct": 2, "judged": 4, "ratio": 0.5}


def test_bad_prompts_file_is_a_usage_error(capsys, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("- {expected: x}\n")
    code, out, err = bench(capsys, "http://127.0.0.1:9/v1", "--prompts", str(f))
    assert code == 2 and out == ""
    assert err.splitlines()[0] == f"Error: {f}: entry 1 has no 'question' text"


def test_records_are_saved_under_the_user_data_dir(server, capsys, data_home):
    url = ollama(server)
    code, out, _ = bench(capsys, url, "--requests", "1", "--format", "json")
    assert code == 0
    record = Path(json.loads(out)["endpoints"][0]["record"])
    assert record.parent == data_home / "plan-deploy" / "bench"
    doc = json.loads(record.read_text())
    assert doc["endpoint"]["runtime"] == "ollama" and doc["levels"][0]["ok"] == 1
    assert [p.name for p in record.parent.iterdir()] == [record.name]  # no temporary file left


def test_two_endpoints_one_refused(server, capsys):
    url = ollama(server)
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    code, out, err = bench(capsys, url, dead, "--requests", "1", "--no-save")
    assert code == 0, err
    assert f"{dead}: failed: {dead}/models: connection refused" in out


# ---------------------------------------------------------------- faults


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error(err: str) -> tuple[str, str]:
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err, err
    assert lines[0].startswith("Error: ") and lines[1].startswith("Hint: ")
    return lines[0], lines[1]


def test_connection_refused(capsys):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    code, out, err = bench(capsys, url)
    assert code == 1 and out == ""
    error, hint = _one_error(err)
    assert "connection refused" in error and "is the server running" in hint


def test_dns_failure(capsys):
    code, _, err = bench(capsys, "http://nonexistent.invalid:8080/v1", "--timeout", "5")
    assert code == 1
    error, hint = _one_error(err)
    assert "host name could not be resolved" in error and "host name" in hint


def test_timeout(server, capsys):
    release = threading.Event()

    def slow(req):
        release.wait(3)
        return Response("data: [DONE]\n\n", mimetype="text/event-stream")

    url = lmstudio(server, chat=slow)
    try:
        code, out, err = bench(capsys, url, "--timeout", "0.3", "--requests", "1", "--no-warmup", "--no-save")
    finally:
        release.set()
    assert code == 1
    assert "1 timeout" in out  # the failures column
    error, hint = err.splitlines()
    assert error.startswith("Error: no request succeeded: ") and "no answer in time" in error
    assert hint.startswith("Hint: ")


@pytest.mark.parametrize("status,kind", [(500, "server failed"), (400, "rejected")])
def test_http_errors_count_per_request(server, capsys, status, kind):
    url = lmstudio(server, chat=lambda req: Response(json.dumps({"error": {"message": "boom"}}), status=status,
                                                    mimetype="application/json"))
    code, out, err = bench(capsys, url, "--requests", "2", "--no-warmup", "--no-save", "--format", "json")
    assert code == 1
    level = json.loads(out)["endpoints"][0]["levels"][0]
    assert level["failed"] == 2 and level["failures"] == {"http": 2}
    assert level["results"][0]["error"].endswith(f"HTTP {status}: boom")
    assert err.splitlines()[0].startswith("Error: no request succeeded: ") and kind in err.splitlines()[1]


def test_some_requests_fail_and_the_rest_are_reported(server, capsys):
    body = (REPLAY / "lmstudio" / "chat.sse").read_text()
    calls = []

    def flaky(req):
        calls.append(1)
        if len(calls) % 2:
            return Response("{}", status=503, mimetype="application/json")
        return Response(iter([e + "\n\n" for e in body.split("\n\n") if e]), mimetype="text/event-stream")

    url = lmstudio(server, chat=flaky)
    code, out, err = bench(capsys, url, "--requests", "4", "--no-warmup", "--no-save", "--format", "json")
    assert code == 0, err
    level = json.loads(out)["endpoints"][0]["levels"][0]
    assert level["ok"] == 2 and level["failed"] == 2 and level["failures"] == {"http": 2}


def test_stream_that_stops_mid_answer(server, capsys):
    url = lmstudio(server, chat=sse(['data: {"choices":[{"index":0,"delta":{"content":"The cap"}}]}\n\n']))
    code, out, err = bench(capsys, url, "--requests", "1", "--no-warmup", "--no-save", "--format", "json")
    assert code == 1
    r = json.loads(out)["endpoints"][0]["levels"][0]["results"][0]
    assert r["error_kind"] == "stream-cut" and "stopped before the answer was complete" in r["error"]
    assert "Traceback" not in err


def test_connection_dropped_mid_answer(server, capsys):
    def dropped(req):
        def gen():
            yield 'data: {"choices":[{"index":0,"delta":{"content":"The"}}]}\n\n'
            raise ConnectionAbortedError("server died")
        return Response(gen(), mimetype="text/event-stream")

    url = lmstudio(server, chat=dropped)
    code, out, err = bench(capsys, url, "--requests", "1", "--no-warmup", "--no-save", "--format", "json")
    assert code == 1
    r = json.loads(out)["endpoints"][0]["levels"][0]["results"][0]
    assert r["error_kind"] == "stream-cut"
    assert "Traceback" not in err


def test_malformed_sse(server, capsys):
    url = lmstudio(server, chat=sse(["data: {not json\n\n", "data: [DONE]\n\n"]))
    code, out, err = bench(capsys, url, "--requests", "1", "--no-warmup", "--no-save", "--format", "json")
    assert code == 1
    r = json.loads(out)["endpoints"][0]["levels"][0]["results"][0]
    assert r["error_kind"] == "malformed" and "malformed event" in r["error"]


def test_malformed_ndjson(server, capsys):
    url = ollama(server, chat=lambda req: Response(iter(['{"message": {"content": "Pa"}, "done": false}\n',
                                                        "<html>oops</html>\n"]), mimetype="application/x-ndjson"))
    code, out, err = bench(capsys, url, "--requests", "1", "--no-warmup", "--no-save", "--format", "json")
    assert code == 1
    r = json.loads(out)["endpoints"][0]["levels"][0]["results"][0]
    assert r["error_kind"] == "malformed" and "malformed line" in r["error"]


def test_ndjson_stream_without_done(server, capsys):
    url = ollama(server, chat=lambda req: Response(iter(['{"message": {"content": "Pa"}, "done": false}\n']),
                                                   mimetype="application/x-ndjson"))
    code, out, _ = bench(capsys, url, "--requests", "1", "--no-warmup", "--no-save", "--format", "json")
    assert code == 1
    assert json.loads(out)["endpoints"][0]["levels"][0]["results"][0]["error_kind"] == "stream-cut"


@pytest.mark.parametrize("path", ["/v1", "/"])
def test_not_an_llm_server(server, capsys, path):
    server.expect_request(re.compile(".*")).respond_with_data("<html><body>It works!</body></html>",
                                                              content_type="text/html")
    code, out, err = bench(capsys, server.url_for(path))
    assert code == 1 and out == ""
    error, hint = _one_error(err)
    assert "not JSON" in error and "LLM server" in hint


def test_not_found_everywhere(server, capsys):
    server.expect_request(re.compile(".*")).respond_with_data("<html>Not Found</html>", status=404,
                                                              content_type="text/html")
    code, _, err = bench(capsys, server.url_for("/v1"))
    assert code == 1
    error, hint = _one_error(err)
    assert "HTTP 404: no model list here" in error and "OpenAI-compatible" in hint


def test_unknown_model_on_an_openai_server(server, capsys):
    url = lmstudio(server)
    code, _, err = bench(capsys, url, "--model", "gpt-9")
    assert code == 1
    assert _one_error(err) == (f"Error: {url} does not serve model 'gpt-9'",
                               "Hint: served: meta-llama-3.1-8b-instruct, qwen2-vl-7b-instruct")


def test_missing_http_library(server, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx2", None)
    monkeypatch.setitem(sys.modules, "httpx", None)
    code, out, err = bench(capsys, "http://127.0.0.1:9/v1")
    assert code == 1 and out == ""
    assert _one_error(err) == ("Error: this command needs an HTTP client library, and none is installed",
                               "Hint: install the optional HTTP client: pip install 'plan-deploy[bench]'")


def test_ctrl_c_keeps_the_finished_requests(server, data_home):
    body = (REPLAY / "lmstudio" / "chat.sse").read_text()
    calls, hanging, release = [], threading.Event(), threading.Event()

    def chat(req):
        calls.append(1)
        if len(calls) > 3:  # warm-up and two requests answer; the third hangs until Ctrl-C
            hanging.set()
            release.wait(20)
        return Response(iter([e + "\n\n" for e in body.split("\n\n") if e]), mimetype="text/event-stream")

    url = lmstudio(server, chat=chat)
    p = subprocess.Popen([sys.executable, "-c", "from planner.cli import main; main()", "bench", url,
                          "--requests", "10", "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT, env=dict(os.environ, XDG_DATA_HOME=str(data_home)))
    try:
        assert hanging.wait(60)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        release.set()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err
    doc = json.loads(out)
    assert doc["interrupted"] is True
    level = doc["endpoints"][0]["levels"][0]
    assert level["finished"] == level["ok"] == 2 and level["requests"] == 10
    assert err == "Error: interrupted; the requests that finished are reported above\n"
    assert not (data_home / "plan-deploy").exists()  # an interrupted run saves no record


def test_vllm_server_figure_from_metrics(server, capsys):
    """vLLM's TPOT histogram (vllm docs/design/metrics.md names and exposition format), read before
    and after the level: 50 more intervals over 0.5 more seconds -> 100 tokens/s per stream."""
    calls = []

    def metrics(req):
        calls.append(1)
        s, n = 1.0 + 0.5 * len(calls), 100 + 50 * len(calls)  # each reading: +0.5 s, +50 intervals
        model = 'model_name="meta-llama/Llama-3.1-8B-Instruct"'
        return Response("# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
                        "# TYPE vllm:num_requests_running gauge\n"
                        f"vllm:num_requests_running{{{model}}} 0.0\n"
                        "# TYPE vllm:inter_token_latency_seconds histogram\n"
                        f'vllm:inter_token_latency_seconds_bucket{{le="0.01",{model}}} {n}.0\n'
                        f"vllm:inter_token_latency_seconds_sum{{{model}}} {s}\n"
                        f"vllm:inter_token_latency_seconds_count{{{model}}} {n}.0\n", mimetype="text/plain")

    server.expect_request("/v1/models").respond_with_json(
        {"object": "list", "data": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model"}]})
    server.expect_request("/metrics").respond_with_handler(metrics)
    body = (REPLAY / "lmstudio" / "chat.sse").read_text()
    server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
        lambda req: Response(iter([e + "\n\n" for e in body.split("\n\n") if e]), mimetype="text/event-stream"))
    code, out, err = bench(capsys, server.url_for("/v1"), "--requests", "1", "--no-warmup", "--no-save",
                           "--format", "json")
    assert code == 0, err
    ep = json.loads(out)["endpoints"][0]
    assert ep["endpoint"]["runtime"] == "vllm"
    assert ep["levels"][0]["server_decode_tokens_per_s"] == 100.0


def test_ollama_client_covers_chat_list_show_ps_and_v1(server):
    from planner.clients.ollama import OllamaClient

    url = ollama(server)
    server.expect_request("/v1/models").respond_with_json(
        {"object": "list", "data": [{"id": "llama3.2:latest", "object": "model", "owned_by": "library"}]})
    with OllamaClient(url, timeout_s=5) as c:
        assert c.version() == "0.5.1"
        assert [m["name"] for m in c.list_models()] == ["deepseek-r1:latest", "llama3.2:latest"]
        assert [m["name"] for m in c.ps()] == ["mistral:latest"]
        assert c.show("llama3.2")["details"]["quantization_level"] == "Q4_K_M"
        chunks = list(c.chat("llama3.2", [{"role": "user", "content": "hi"}], max_tokens=8))
        assert "".join(x["message"]["content"] for x in chunks) == "The capital of France is Paris."
        assert chunks[-1]["done"] is True and chunks[-1]["eval_count"] == 282
        with c.openai() as v1:
            assert v1.base == url + "/v1" and v1.models() == ["llama3.2:latest"]


def test_yaml_output(server, capsys):
    import yaml

    url = ollama(server)
    code, out, _ = bench(capsys, url, "--requests", "1", "--no-save", "--format", "yaml")
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["endpoints"][0]["levels"][0]["ok"] == 1 and doc["interrupted"] is False


def test_ctrl_c_before_any_request(server, capsys, monkeypatch):
    from planner.bench import endpoint

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(endpoint, "resolve", interrupted)
    code, out, err = bench(capsys, ollama(server), "--no-save")
    assert code == 1
    assert "interrupted before any request finished" in out
    assert err == "Error: interrupted; the requests that finished are reported above\n"


@pytest.mark.parametrize("url,why", [("http://", "no host"), ("ftp://x/v1", "the scheme must be http or https"),
                                     ("http://[::1/v1", "Invalid IPv6 URL"),
                                     ("http://127.0.0.1:99999/v1", "Port out of range")])
def test_bad_urls_are_usage_errors_before_any_request(server, capsys, url, why):
    good = ollama(server)
    code, out, err = bench(capsys, good, url)
    assert code == 2 and out == "" and not server.log
    error, hint = _one_error(err)
    assert error.startswith(f"Error: invalid URL {url!r}") and why in error


@pytest.mark.parametrize("args,text", [(["--concurrency", "0"], "each level must be 1 or more"),
                                       (["--concurrency", "1,x"], "comma-separated whole numbers"),
                                       (["--requests", "0"], "--requests"),
                                       (["--plan", "no-such-model-xyz"], "unknown model 'no-such-model-xyz'")])
def test_bad_options_are_usage_errors(server, capsys, args, text):
    code, out, err = bench(capsys, ollama(server), *args)
    assert code == 2 and out == "" and not server.log
    error, _ = _one_error(err)
    assert text in error


def test_a_server_without_usage_gives_no_token_rate(server, capsys):
    body = (REPLAY / "lmstudio" / "chat.sse").read_text()
    events = [e + "\n\n" for e in body.split("\n\n") if e and '"usage"' not in e]
    url = lmstudio(server, chat=sse(events))
    code, out, err = bench(capsys, url, "--requests", "1", "--no-warmup", "--no-save", "--format", "json")
    assert code == 0, err
    level = json.loads(out)["endpoints"][0]["levels"][0]
    r = level["results"][0]
    assert r["ok"] and r["completion_tokens"] is None and r["decode_tokens_per_s"] is None
    assert "no usage" in r["note"] and level["decode_tokens_per_s"]["p50"] is None
    assert level["ttft_s"]["p50"] > 0
