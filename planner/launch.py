"""Launch commands built from the templates in data/runtimes.yaml (one builder per runtime kind)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable

from .catalog import Artifact, ModelSpec, RuntimeSpec
from .fit import Placement
from .memory import MemoryEstimate


@dataclass(frozen=True, slots=True)
class Launch:
    command: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"command": self.command, "argv": list(self.argv), "env": dict(self.env), "port": self.port}


def _fill(template: list[str], values: dict[str, str]) -> list[str]:
    return [part.format(**values) for part in template]


def _render(runtime: RuntimeSpec, values: dict[str, str | None]) -> tuple[list[str], dict[str, str]]:
    """argv and env from the runtime's template; optional groups only where their value is set."""
    spec = runtime.launch
    present = {k: str(v) for k, v in values.items() if v is not None}
    argv = _fill(spec["argv"], present)
    for key, group in spec.get("optional", {}).items():
        if values.get(key) is not None:
            argv += _fill(group, present)
    env = {k: v.format(**present) for k, v in spec.get("env", {}).items()}
    for key, group in spec.get("optional_env", {}).items():
        if values.get(key) is not None:
            env.update({k: v.format(**present) for k, v in group.items()})
    return argv, env


def _command(argv: list[str], env: dict[str, str]) -> str:
    return " ".join([f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())] + [shlex.join(argv)])


# ---------------------------------------------------------------- per-runtime values


def _gguf_values(model: ModelSpec, quant: str, art: Artifact, est: MemoryEstimate, placement: Placement) -> dict:
    if placement.kind == "cpu":
        layers = 0
    elif placement.kind == "partial-offload":
        layers = placement.gpu_layers or 0
    else:
        layers = est.layers + 1  # every repeating layer and the output layer
    return {"gguf_repo": art.repo, "gguf_quant": quant, "gpu_layers": layers,
            "split_mode": "layer" if placement.kind == "multi-gpu" else None}


def _llama_cpp(model, quant, art, est, placement, runtime, values):
    values.update(_gguf_values(model, quant, art, est, placement))
    if art.path:
        values["gguf_repo"] = art.path
    argv, env = _render(runtime, values)
    if art.path and "-hf" in argv:  # a local file: -m PATH instead of -hf REPO:QUANT
        i = argv.index("-hf")
        argv[i:i + 2] = ["-m", art.path]
    return argv, env, ()


def _ollama(model, quant, art, est, placement, runtime, values):
    values["ollama_tag"] = art.tag
    argv, env = _render(runtime, values)
    server = runtime.launch.get("server", ["ollama", "serve"])
    # The context is a server setting: start the server with it, then run the model.
    command = f"{_command(list(server), env)} & sleep 2 && {shlex.join(argv)}"
    note = (f"if Ollama already runs as a service, set {', '.join(f'{k}={v}' for k, v in sorted(env.items()))} "
            f"in its environment and restart it, then run: {shlex.join(argv)}")
    return argv, env, (note,), command


def _lm_studio(model, quant, art, est, placement, runtime, values):
    if placement.kind == "cpu":
        ratio = "off"
    elif placement.kind == "partial-offload":
        ratio = f"{(placement.gpu_layers or 0) / est.layers:.2f}"
    else:
        ratio = "max"
    values.update({"lms_model": art.repo, "lms_quant": quant.lower(), "gpu_ratio": ratio})
    argv, env = _render(runtime, values)
    pre = _fill(runtime.launch["pre"], {k: str(v) for k, v in values.items() if v is not None})
    command = f"{shlex.join(pre)} && {shlex.join(argv)}"
    return argv, env, (), command


def _vllm(model, quant, art, est, placement, runtime, values):
    share = placement.gpu_share if placement.gpu_share is not None else runtime.memory.get("gpu_memory_utilization")
    values.update({"hf_repo": art.repo, "gpu_util": f"{share:.2f}" if share is not None else None,
                   "tensor_parallel": placement.tensor_parallel})
    if values.get("kv_cache_type") in ("auto",):
        values["kv_cache_type"] = None
    argv, env = _render(runtime, values)
    return argv, env, ()


_SNIPPET = ("import torch; from transformers import AutoModelForCausalLM, AutoTokenizer; m={repo!r}; "
            "tok = AutoTokenizer.from_pretrained(m); "
            "model = AutoModelForCausalLM.from_pretrained(m, torch_dtype=torch.bfloat16, device_map={device!r}); "
            "ids = tok.apply_chat_template([{{'role': 'user', 'content': 'Hello'}}], add_generation_prompt=True, "
            "return_tensors='pt').to(model.device); "
            "print(tok.decode(model.generate(ids, max_new_tokens=128)[0][ids.shape[1]:], skip_special_tokens=True))")


def _transformers(model, quant, art, est, placement, runtime, values):
    device = "cpu" if placement.kind == "cpu" else "auto"
    values["transformers_snippet"] = _SNIPPET.format(repo=art.repo, device=device)
    values["kv_cache_type"] = None
    argv, env = _render(runtime, values)
    return argv, env, ()


def _mlx(model, quant, art, est, placement, runtime, values):
    values["mlx_repo"] = art.repo
    values["kv_cache_type"] = None
    argv, env = _render(runtime, values)
    return argv, env, ()


# Runtimes whose command here can name a local file or directory (llama-server -m PATH; vllm serve
# PATH, sglang --model-path PATH, from_pretrained(PATH), mlx_lm --model PATH); LM Studio and Ollama
# import files into their own stores first.
_LOCAL_PATH = frozenset({"llama.cpp", "vllm", "sglang", "transformers", "mlx-lm"})


def loads_local_path(runtime_id: str) -> bool:
    """Whether the launch command for this runtime can point at a local model path."""
    return runtime_id in _LOCAL_PATH


_BUILDERS: dict[str, Callable] = {
    "llama.cpp": _llama_cpp, "ollama": _ollama, "lm-studio": _lm_studio, "vllm": _vllm, "sglang": _vllm,
    "transformers": _transformers, "mlx-lm": _mlx,
}


def command(model: ModelSpec, quant: str, art: Artifact, est: MemoryEstimate, placement: Placement,
            runtime: RuntimeSpec, kv_cache_type: str | None = None) -> Launch:
    builder = _BUILDERS[runtime.id]
    default_kv = next(iter(runtime.kv_cache_types))
    values: dict = {"context": est.context, "port": runtime.default_port,
                    "kv_cache_type": kv_cache_type if kv_cache_type and kv_cache_type != default_kv else None}
    out = builder(model, quant, art, est, placement, runtime, values)
    argv, env, notes = out[0], out[1], out[2]
    text = out[3] if len(out) > 3 else _command(argv, env)
    return Launch(command=text, argv=tuple(argv), env=env, port=runtime.default_port, notes=tuple(notes))
