"""Every launch command the planner emits, checked against the option tables recorded from each
runtime's own parser (data/runtime_flags/, written by scripts/dump_runtime_flags.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from planner.runtimes import flags
from .test_cli import run as _run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MACHINES = HERE / "machines"

# CPU box, laptop GPU on Windows, 24 GB, mixed GPUs, MIG, 8xH100, MI300X, Windows desktop, M3 Max.
MACHINE_SET = ["cpu-box", "laptop-8gb", "gpu-24gb", "mixed-4090-3060", "mig-h100", "h100x8", "mi300x",
               "windows-4090", "m3-max"]
# Options that add flags or environment variables to the commands.
VARIANTS = {
    "default": (),
    "kv-q8_0": ("--kv-cache-type", "q8_0"),
    "kv-fp8": ("--kv-cache-type", "fp8"),
    "long-context": ("--context", "131072"),
    "eager-0.95": ("--enforce-eager", "--gpu-memory-utilization", "0.95"),
}
RUNTIMES = ["llama.cpp", "ollama", "lm-studio", "vllm", "sglang", "transformers", "mlx-lm"]




@functools.lru_cache(maxsize=None)
def _plans(machine: str, variant: str) -> tuple[dict, ...]:
    code, out, err = _run("plan", "--machine", str(MACHINES / f"{machine}.yaml"), "--all", "--format", "json",
                     *VARIANTS[variant])
    assert code in (0, 3), err  # 3: nothing fits, a documented answer
    return tuple(json.loads(out)["plans"]) if code == 0 else ()


def _launch(plan: dict) -> SimpleNamespace:
    """The plan's launch from its JSON: every step when the plan lists steps, else argv/env."""
    launch = plan["launch"]
    steps = tuple(SimpleNamespace(argv=s.get("argv", []), env=s.get("env", {})) for s in launch.get("steps", []))
    return SimpleNamespace(argv=launch["argv"], env=launch.get("env", {}), steps=steps)


def _problems(machine: str, variant: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for plan in _plans(machine, variant):
        version = plan["launch"].get("runtime_version")
        for problem in flags.check_launch(plan["runtime"], version, _launch(plan)):
            out.setdefault(f"{plan['runtime']} {version}: {problem}", []).append(f"{plan['model']} {plan['quant']}")
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("machine", MACHINE_SET)
def test_every_launch_command_is_accepted_by_its_runtime(machine, variant):
    problems = _problems(machine, variant)
    report = "\n".join(f"{p}  (e.g. {', '.join(plans[:2])}; {len(plans)} plans)" for p, plans in sorted(problems.items()))
    assert not problems, f"{machine} [{variant}]:\n{report}"


def test_no_plan_uses_an_option_its_runtime_marks_deprecated():
    found: dict[str, set[str]] = {}
    for machine in MACHINE_SET:
        for variant in VARIANTS:
            for plan in _plans(machine, variant):
                version = plan["launch"].get("runtime_version")
                for problem in flags.check_launch(plan["runtime"], version, _launch(plan), deprecated=True):
                    found.setdefault(problem, set()).add(f"{machine} [{variant}]")
    assert not found, "\n".join(f"{p}  ({', '.join(sorted(w)[:3])})" for p, w in sorted(found.items()))


def test_the_machine_set_reaches_every_runtime():
    """The walk above covers every runtime with at least one plan (else a runtime goes unchecked)."""
    seen = {p["runtime"] for m in MACHINE_SET for v in VARIANTS for p in _plans(m, v)}
    assert seen == set(RUNTIMES)


# ------------------------------------------------------------ the checker can fail


def _llama(*extra: str) -> SimpleNamespace:
    argv = ["llama-server", "-hf", "bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M", "-c", "8192", "-ngl", "99",
            "-fa", "on", "--host", "127.0.0.1", "--port", "8080", "--jinja", *extra]
    return SimpleNamespace(argv=argv, env={}, steps=())


def test_a_correct_command_passes():
    assert flags.check_launch("llama.cpp", "0c1e57098", _llama("-ctk", "q8_0", "-ctv", "q8_0")) == []


def test_a_misspelt_flag_is_reported_with_the_right_spelling():
    problems = flags.check_launch("llama.cpp", "0c1e57098", _llama("--ctx-sise", "8192"))
    assert problems == ["llama-server: unknown flag --ctx-sise (did you mean --ctx-size?)"]


def test_a_misspelt_flag_in_a_step_fails_the_walk():
    launch = SimpleNamespace(argv=[], env={}, steps=(
        SimpleNamespace(argv=["ollama", "serve"], env={"OLLAMA_CONTEXT_LENGHT": "8192"}),
        SimpleNamespace(argv=["ollama", "run", "qwen2.5:7b", "--verbse"], env={}),
    ))
    problems = flags.check_launch("ollama", "v0.33.0-rc2", launch)
    assert problems == [
        "environment: ollama v0.33.0-rc2 does not read OLLAMA_CONTEXT_LENGHT (did you mean OLLAMA_CONTEXT_LENGTH?)",
        "ollama run: unknown flag --verbse (did you mean --verbose?)",
    ]


def test_abbreviations_are_refused_even_where_argparse_would_take_them():
    # SGLang's parser (argparse, allow_abbrev left on) reads --tp as --tp-size today; a new --tp-*
    # option would make it ambiguous, so the planner must spell options out.
    launch = SimpleNamespace(argv=["python", "-m", "sglang.launch_server", "--model-path", "m", "--tp", "2"],
                             env={}, steps=())
    problems = flags.check_launch("sglang", "0.5.23", launch)
    assert len(problems) == 1 and problems[0].startswith("python -m sglang.launch_server: abbreviated flag --tp ")


@pytest.mark.parametrize("runtime, version, argv, expected", [
    ("llama.cpp", "0c1e57098", ["llama-server", "-fa", "yes"], "-fa 'yes' is not accepted"),
    ("llama.cpp", "0c1e57098", ["llama-server", "-ctk", "q8"], "-ctk 'q8' is not accepted"),
    ("llama.cpp", "0c1e57098", ["llama-server", "--port=8080"], "no --flag=value form"),
    ("llama.cpp", "0c1e57098", ["llama-server", "-c"], "-c needs 1 value"),
    ("llama.cpp", "0c1e57098", ["llama-server", "model.gguf"], "1 positional arguments, the parser takes 0"),
    ("vllm", "0.33.0", ["vllm", "serve", "m", "--gpu-memory-utilization", "1.5"], "'1.5' is not accepted"),
    ("vllm", "0.33.0", ["vllm", "serve", "m", "--gpu-memory-utilization", "0"], "'0' is not accepted"),
    ("vllm", "0.33.0", ["vllm", "serve", "m", "--kv-cache-dtype", "q8_0"], "'q8_0' is not accepted"),
    ("vllm", "0.33.0", ["vllm", "serve", "m", "--enforce-eager=true"], "--enforce-eager takes no value"),
    ("vllm", "0.33.0", ["vllm", "server", "m"], "not a command of vllm"),
    ("sglang", "0.5.23", ["python", "-m", "sglang.launch_server", "--kv-cache-dtype", "fp8"], "'fp8' is not accepted"),
    ("lm-studio", "0.3.43", ["lms", "load", "m", "--gpu", "1.5"], "--gpu '1.5' is not accepted"),
    ("lm-studio", "0.3.43", ["lms", "load", "m", "--context", "4096"], "abbreviated flag --context"),
    ("mlx-lm", "0.32.2", ["mlx_lm.server", "--model", "m", "--max-kv-size", "4096"], "unknown flag --max-kv-size"),
    ("transformers", "5.24.0", ["python", "-c", "print(("], "not valid Python"),
])
def test_values_and_spellings_the_parser_refuses(runtime, version, argv, expected):
    problems = flags.check_launch(runtime, version, SimpleNamespace(argv=argv, env={}, steps=()))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("runtime, version, argv", [
    ("llama.cpp", "0c1e57098", ["llama-server", "-fa", "auto", "-sm", "none", "-dev", "CUDA1", "--no-jinja"]),
    ("vllm", "0.33.0", ["vllm", "serve", "m", "--kv-cache-dtype", "fp8", "-tp", "2", "--no-enable-prefix-caching",
                        "--gpu-memory-utilization=0.92"]),
    ("sglang", "0.5.23", ["python3", "-m", "sglang.launch_server", "--tp-size", "2", "--mem-fraction-static", "0.8"]),
    ("lm-studio", "0.3.43", ["lms", "load", "m", "--gpu", "0.5", "-c", "4096", "-y"]),
    ("lm-studio", "0.3.43", ["lms", "server", "start", "--port", "1234"]),
])
def test_spellings_and_values_the_parser_accepts(runtime, version, argv):
    assert flags.check_launch(runtime, version, SimpleNamespace(argv=argv, env={}, steps=())) == []


def test_deprecated_options_are_reported_only_when_asked():
    argv = ["python", "-m", "sglang.launch_server", "--model-path", "m", "--disable-cuda-graph"]
    launch = SimpleNamespace(argv=argv, env={}, steps=())
    assert flags.check_launch("sglang", "0.5.23", launch) == []  # still accepted
    [problem] = flags.check_launch("sglang", "0.5.23", launch, deprecated=True)
    assert "--disable-cuda-graph is deprecated in sglang 0.5.23" in problem and "--cuda-graph-backend-" in problem


def test_environment_values_are_checked_like_the_flag_they_set():
    launch = SimpleNamespace(argv=["llama-server"], env={"LLAMA_ARG_FLASH_ATTN": "maybe", "CUDA_VISIBLE_DEVICES": "0"},
                             steps=())
    assert flags.check_launch("llama.cpp", "0c1e57098", launch) == [
        "environment: LLAMA_ARG_FLASH_ATTN='maybe' is not accepted "
        "(allowed: on, enabled, true, 1, off, disabled, false, 0, auto, -1)"]


def test_a_version_without_a_table_is_a_problem_not_a_pass():
    problems = flags.check_launch("vllm", "0.1.0", SimpleNamespace(argv=["vllm", "serve", "m"], env={}, steps=()))
    assert problems and "no option table recorded for vllm 0.1.0" in problems[0]


# ------------------------------------------------------------ the tables themselves


def test_every_runtime_has_a_table_for_the_version_the_catalog_targets():
    runtimes = yaml.safe_load((ROOT / "data" / "runtimes.yaml").read_text())["runtimes"]
    for rt in runtimes:
        version = (rt.get("version") or {}).get("id")
        assert version, f"{rt['id']}: no version in data/runtimes.yaml"
        assert flags.load_table(rt["id"], version) is not None, (rt["id"], version, flags.recorded_versions(rt["id"]))


@pytest.mark.parametrize("path", sorted((ROOT / "data" / "runtime_flags").glob("*-*.yaml")), ids=lambda p: p.stem)
def test_tables_name_their_source_and_command_and_no_machine_paths(path):
    text = path.read_text()
    doc = yaml.safe_load(text)
    assert doc["schema"] == "plan-deploy/runtime-flags/v1"
    assert doc["source"] and doc["command"].startswith("python scripts/dump_runtime_flags.py ")
    assert path.stem == f"{doc['runtime']}-{doc['version']}"
    assert "/work/" not in text and "/tmp/" not in text and "/root/" not in text
    names = [n for prog in doc["programs"].values() for o in prog["options"] for n in o["names"]]
    assert names and all(n.startswith("-") for n in names)


def test_known_options_are_recorded_as_their_parsers_define_them():
    """Spot checks against the sources, read by hand (file and line in each table's `source`)."""
    llama = flags.load_table("llama.cpp", "0c1e57098").programs[0].options
    assert llama["-c"] is llama["--ctx-size"] and llama["-c"].env == "LLAMA_ARG_CTX_SIZE"
    assert llama["-ngl"].names == ("-ngl", "--gpu-layers", "--n-gpu-layers")
    assert llama["-sm"].choices == ("none", "layer", "row", "tensor")
    assert llama["--jinja"].value == "none" and "--no-jinja" in llama
    vllm = flags.load_table("vllm", "0.33.0").programs[0].options
    assert vllm["--tensor-parallel-size"] is vllm["-tp"]
    assert vllm["--gpu-memory-utilization"].range == {"gt": 0, "le": 1}  # Field(default=0.92, gt=0, le=1)
    assert vllm["--enforce-eager"].value == "none" and "--no-enforce-eager" in vllm
    # vLLM's EnableDisableAction: --enable-x pairs with --disable-x; --no-enable-x is still accepted
    assert vllm["--enable-prefix-caching"] is vllm["--disable-prefix-caching"] is vllm["--no-enable-prefix-caching"]
    sglang = flags.load_table("sglang", "0.5.23").programs[0].options
    assert sglang["--tp-size"] is sglang["--tensor-parallel-size"] and "--tp" not in sglang
    assert "fp8_e4m3" in sglang["--kv-cache-dtype"].choices
    ollama = flags.load_table("ollama", "v0.33.0-rc2")
    assert {"OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_FLASH_ATTENTION", "OLLAMA_HOST"} <= ollama.env


def _dump_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dump_runtime_flags", ROOT / "scripts" / "dump_runtime_flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ARG_CPP = r"""
static std::initializer_list<enum llama_example> mmproj_examples = { LLAMA_EXAMPLE_MTMD, LLAMA_EXAMPLE_SERVER };
const std::vector<ggml_type> kv_cache_types = { GGML_TYPE_F16, GGML_TYPE_Q8_0 };
bool common_arg_utils::is_truthy(const std::string & value) { return value == "on" || value == "1"; }
bool common_arg_utils::is_falsey(const std::string & value) { return value == "off" || value == "0"; }
bool common_arg_utils::is_autoy(const std::string & value) { return value == "auto"; }
    add_opt(common_arg(
        {"-c", "--ctx-size"}, "N",
        string_format("size of the prompt context (default: %d, 0 = loaded from model)", params.n_ctx),
        [](common_params & params, int value) { params.n_ctx = value; }
    ).set_env("LLAMA_ARG_CTX_SIZE"));
    add_opt(common_arg({ "-fa", "--flash-attn" }, "[on|off|auto]", "flash attention",
        [](common_params & params, const std::string & value) {
            if (is_truthy(value)) { } else if (is_falsey(value)) { } else if (is_autoy(value)) { }
            else { throw std::runtime_error("unknown value"); }
        }).set_env("LLAMA_ARG_FLASH_ATTN"));
    add_opt(common_arg(
        {"--jinja"}, {"--no-jinja"}, "jinja (default: %s, see \"x\")",
        [](common_params & params, bool value) { params.use_jinja = value; }
    ).set_examples({LLAMA_EXAMPLE_SERVER}).set_env("LLAMA_ARG_JINJA"));
    add_opt(common_arg(
        {"-ctk", "--cache-type-k"}, "TYPE", "KV cache type for K",
        [](common_params & params, const std::string & value) { }
    ).set_env("LLAMA_ARG_CACHE_TYPE_K"));
    add_opt(common_arg(
        {"--mmproj"}, "FILE", "projector",
        [](common_params & params, const std::string & value) { }
    ).set_examples(mmproj_examples));
    add_opt(common_arg(
        {"-p", "--prompt"}, "PROMPT", "prompt",
        [](common_params & params, const std::string & value) { }
    ).set_excludes({LLAMA_EXAMPLE_SERVER}));
    add_opt(common_arg(
        {"--perplexity"}, "compute perplexity",
        [](common_params & params) { }
    ).set_examples({LLAMA_EXAMPLE_PERPLEXITY}));
    const char * cache = getenv("LLAMA_CACHE");
"""


def test_the_dump_script_reads_arg_cpp_as_the_server_parser_does(tmp_path):
    """Server options only (examples SERVER or COMMON, not excluded), aliases, negations, env,
    on|off|auto spellings, KV types; the same input rewrites the same bytes."""
    import io
    import tarfile

    sdist = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in (("llama_cpp_python-9.9.9/CHANGELOG.md",
                            "## [9.9.9]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@abc123def\n"),
                           ("llama_cpp_python-9.9.9/vendor/llama.cpp/common/arg.cpp", _ARG_CPP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dump = _dump_script()
    out = tmp_path / "out"
    assert dump.main(["llama-server", str(sdist), "--out", str(out)]) == 0
    path = out / "llama.cpp-abc123def.yaml"
    doc = yaml.safe_load(path.read_text())
    opts = {o["names"][0]: o for o in doc["programs"]["llama-server"]["options"]}
    assert sorted(opts) == ["--jinja", "--mmproj", "-c", "-ctk", "-fa"]
    assert opts["-c"] == {"names": ["-c", "--ctx-size"], "value": "one", "env": "LLAMA_ARG_CTX_SIZE", "metavar": "N"}
    assert opts["-fa"]["choices"] == ["on", "1", "off", "0", "auto"]
    assert opts["--jinja"]["names"] == ["--jinja", "--no-jinja"] and opts["--jinja"]["value"] == "none"
    assert opts["--jinja"]["env_negated"] == "LLAMA_ARG_NO_JINJA"
    assert opts["-ctk"]["choices"] == ["f16", "q8_0"]
    assert "LLAMA_CACHE" in doc["env"] and "LLAMA_ARG_NO_JINJA" in doc["env"]
    assert doc["command"] == "python scripts/dump_runtime_flags.py llama-server llama_cpp_python-9.9.9.tar.gz"
    first = path.read_bytes()
    dump.main(["llama-server", str(sdist), "--out", str(out)])
    assert path.read_bytes() == first


def test_the_dump_script_reads_an_argparse_parser_without_importing_it(tmp_path):
    import zipfile

    server = """
import argparse
LEVELS = ["DEBUG", "INFO"]
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=str)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--log-level", choices=LEVELS)
    parser.add_argument("--stop", nargs="+")
    parser.add_argument("--cache", action=argparse.BooleanOptionalAction)
    raise SystemExit("never imported")
"""
    wheel = tmp_path / "mlx_lm-9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mlx_lm/server.py", server)
        z.writestr("mlx_lm-9.9.dist-info/METADATA", "Metadata-Version: 2.1\nName: mlx-lm\nVersion: 9.9\n")
    dump = _dump_script()
    dump.main(["mlx-lm", str(wheel), "--out", str(tmp_path)])
    doc = yaml.safe_load((tmp_path / "mlx-lm-9.9.yaml").read_text())
    opts = {o["names"][0]: o for o in doc["programs"]["mlx_lm.server"]["options"]}
    assert opts["--port"]["value"] == "one" and opts["--trust-remote-code"]["value"] == "none"
    assert opts["--log-level"]["choices"] == ["DEBUG", "INFO"]
    assert opts["--stop"]["value"] == "many"
    assert opts["--cache"]["names"] == ["--cache", "--no-cache"]


def test_with_no_version_the_newest_recorded_table_is_used():
    assert sorted(["0.33.0", "0.9.0", "v0.10.1"], key=flags._version_key) == ["0.9.0", "v0.10.1", "0.33.0"]
    launch = SimpleNamespace(argv=["vllm", "serve", "m", "--max-model-len", "4096"], env={}, steps=())
    assert flags.check_launch("vllm", None, launch) == []
