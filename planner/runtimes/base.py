"""The interface every runtime module implements, and the records it hands back.

A runtime module (llama_cpp.py, vllm.py, ...) subclasses `Runtime` and answers, for one machine:
can you run here (OS, accelerator, its architecture, compute capability per quantization path),
at which dtype, with what memory overhead, at what speed constants, and launched how (argv + env
per step; `render.py` turns the steps into a POSIX or PowerShell line, last). Facts come from the
runtime's entry in data/runtimes.yaml (`spec`); the module holds the rules.

`client` and `detect` are slots for the HTTP client and local detection of a later stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..catalog import Artifact, Catalog, ModelSpec, QuantSpec, RuntimeSpec
from ..errors import UsageError
from ..hardware import Gpu, Machine


@dataclass(frozen=True, slots=True)
class Options:
    """Runtime settings a user chooses. `gpu_memory_utilization` is vLLM's --gpu-memory-utilization
    and SGLang's --mem-fraction-static (a share of each GPU's total memory, 0 < x <= 1);
    `enforce_eager` turns CUDA graphs off (vLLM --enforce-eager, SGLang --cuda-graph-backend-decode/prefill disabled)."""

    gpu_memory_utilization: float | None = None
    enforce_eager: bool = False

    def __post_init__(self) -> None:
        share = self.gpu_memory_utilization
        if share is not None and not 0 < share <= 1:
            raise UsageError(f"--gpu-memory-utilization {share:g} is out of range",
                             hint="allowed: a share of GPU memory above 0 and at most 1, e.g. 0.9")


@dataclass(frozen=True, slots=True)
class Step:
    """One command a user runs: a runtime's argv + environment, or an OS action that render.py
    spells for the user's system (`action`: ("write", file, content), ("setenv", name, value) for
    a desktop app's environment, ("restart-app", app name)).

    role: prepare (download, configure, write a file) | server (the long-running process) | client.
    background: the server runs in the background while a client step follows.
    """

    role: str
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    background: bool = False
    action: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "argv": list(self.argv), "env": dict(self.env)}
        if self.action:
            d["action"] = list(self.action)
        return d


@dataclass(frozen=True, slots=True)
class Launch:
    """What to run. `argv`/`env` are the main server command; `steps` every command in order;
    `command` all of them rendered for `shell` (posix | powershell)."""

    command: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    notes: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    shell: str = "posix"
    runtime_version: str | None = None

    def to_dict(self) -> dict:
        return {"command": self.command, "argv": list(self.argv), "env": dict(self.env), "port": self.port,
                "shell": self.shell, "steps": [s.to_dict() for s in self.steps],
                "runtime_version": self.runtime_version}


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Everything a launch command depends on."""

    model: ModelSpec
    quant: str
    artifact: Artifact
    estimate: Any  # memory.MemoryEstimate
    placement: Any  # fit.Placement
    machine: Machine
    kv_cache_type: str | None = None  # None: the runtime's default
    options: Options = Options()


def cc_tuple(text: str | None) -> tuple[int, int] | None:
    """'8.9' -> (8, 9); None when absent or unreadable."""
    if not text:
        return None
    major, _, minor = str(text).partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return None


class Runtime:
    """A runtime as data (`spec`) plus the rules of its module. Subclasses override what differs."""

    id: ClassVar[str] = ""
    client: ClassVar[Any] = None  # HTTP client (bench stage)
    detect: ClassVar[Any] = None  # local detection (bench stage)
    # Whether a plan may launch a GGUF file already on this disk (False: the runtime keeps models
    # in its own store and has no argument for an arbitrary path).
    loads_local_files: ClassVar[bool] = True

    def __init__(self, spec: RuntimeSpec) -> None:
        self.spec = spec

    @property
    def version(self) -> str | None:
        return self.spec.version.get("id")

    # ------------------------------------------------------------ support

    def machine_reason(self, machine: Machine) -> str | None:
        """None if the runtime can run on this machine at all, else the reason it can't."""
        rt = self.spec
        if not rt.supports_os(machine.os.system):
            return f"{rt.id} does not run on {machine.os.system}"
        if any(self.gpu_reason(g) is None for g in machine.gpus) or rt.accelerators.get("cpu"):
            return None
        kinds = "/".join(sorted(k for k in rt.accelerators if k != "cpu"))
        why = [w for g in machine.gpus if (w := self.gpu_reason(g))]
        if why:
            return "; ".join(dict.fromkeys(why))
        return f"{rt.id} needs a supported GPU ({kinds}) and this machine has none"

    def gpu_reason(self, gpu: Gpu, quant: QuantSpec | None = None) -> str | None:
        """None if this GPU can run the runtime (and `quant`), else why not."""
        acc = self.spec.accelerators.get(gpu.vendor)
        if not acc:
            return f"{self.id} has no {gpu.vendor} GPU backend"
        need = acc.get("min_compute_capability") if isinstance(acc, dict) else None
        have = cc_tuple(gpu.compute_capability)
        if need and have is not None and have < cc_tuple(need):
            return (f"{self.id} needs compute capability {need} or newer; {gpu.name} has "
                    f"{gpu.compute_capability}")
        if quant is not None:
            return self.quant_reason(gpu, quant)
        return None

    def quant_reason(self, gpu: Gpu, quant: QuantSpec) -> str | None:
        """Compute capability per quantization path (NVIDIA)."""
        if gpu.vendor != "nvidia":
            return None
        qneed = self.spec.quant_min_cc.get(quant.id) or quant.min_compute_capability
        have = cc_tuple(gpu.compute_capability)
        if qneed and have is not None and have < cc_tuple(qneed):
            return f"{quant.id} on {self.id} needs compute capability {qneed}; {gpu.name} has {gpu.compute_capability}"
        return None

    def quant_notes(self, gpus: list[Gpu], quant: QuantSpec) -> tuple[str, ...]:
        """How the quantization runs on these GPUs when that differs from its name (e.g. weight-only)."""
        return ()

    def weight_scale(self, model: ModelSpec, quant: QuantSpec, gpus: list[Gpu]) -> tuple[float, str | None]:
        """Bytes of the loaded weights / bytes of the file, and why (dtype resolution)."""
        return 1.0, None

    def pools(self, gpus: list[Gpu]) -> bool:
        """Whether several of these devices may serve one model (MIG instances never do:
        a process sees one instance, and instances have no peer-to-peer path)."""
        return not any(g.mig_instance for g in gpus)

    # ------------------------------------------------------------ memory

    def gpu_share(self, options: Options) -> float | None:
        """The share of each GPU the runtime claims up front (vLLM/SGLang); None: it allocates as needed."""
        return None

    def outside_share_bytes(self, est: Any) -> int:
        """Bytes of the estimate that live outside the share the runtime claims (0: all inside)."""
        return 0

    def gpu_budget(self, gpu: Gpu, options: Options, usable: int) -> tuple[int, float | None]:
        """Bytes the runtime may fill on one GPU whose usable memory is `usable`, and its share."""
        mem = self.spec.memory
        margin = int(mem.get("fit_margin_bytes", 0)) + int(mem.get("gpu_minimum_bytes", 0))
        return max(0, usable - margin), None

    def overhead_bytes(self, model: ModelSpec, catalog: Catalog, context: int, batch: int, gpu: bool,
                       options: Options, devices: tuple[Gpu, ...] = ()) -> int:
        """Device-side fixed costs: CUDA context and allocator slack (GPU runs), compute buffers.
        `devices`: the GPUs the plan may use (for defaults that depend on the GPU)."""
        mem = self.spec.memory
        total = 0
        if gpu:
            total += int(mem.get("cuda_context_bytes", 0)) + int(mem.get("allocator_slack_bytes", 0))
        if "n_ubatch" in mem and not gpu:
            # llama.cpp's CPU backend: its own compute buffer (fitted to its logs) and the output buffer
            from ..memory import gguf_cpu_compute_buffer, gguf_output_buffer

            total += gguf_cpu_compute_buffer(model.arch, int(mem["n_ubatch"]), context, catalog.constants)
            total += gguf_output_buffer(model.arch, batch)
        elif "n_ubatch" in mem:
            from ..memory import gguf_compute_buffer

            total += gguf_compute_buffer(model.arch, int(mem["n_ubatch"]))
        return total

    # ------------------------------------------------------------ speed

    @property
    def speed_class(self) -> str:
        return self.spec.speed.get("class", "gguf")

    def decode_constants(self, catalog: Catalog, hw: str) -> dict[str, float]:
        """{efficiency, layer_overhead_us, step_overhead_us, low, high} on a hardware class."""
        table = catalog.constants["speed"]["decode"]
        row = table.get(self.speed_class) or {}
        k = dict(row.get(hw) or table["gguf"][hw])
        k.setdefault("step_overhead_us", 0.0)
        return k

    # ------------------------------------------------------------ serving (--concurrency)

    def serving_reason(self, n: int, model: ModelSpec | None = None) -> str | None:
        """None if the plan can serve `n` users at once, else why not (data `serving.why`; families
        the runtime serves one request at a time: `serving.one_request_families`)."""
        s = self.spec.serving
        if n > 1 and s.get("batching", "none") == "none":
            return s.get("why") or f"{self.id} serves one request at a time"
        if n > 1 and model is not None and model.family in s.get("one_request_families", ()):
            return (f"{self.id} serves {model.family} models one request at a time (its scheduler forces "
                    f"parallel 1 for this architecture): use llama.cpp, vLLM or SGLang for {n} users")
        return None

    def batching(self, n: int) -> str:
        """How `n` users are served, in one phrase (data `serving.how`, {n} filled in)."""
        how = self.spec.serving.get("how")
        return how.format(n=n) if how else "one request at a time"

    def concurrency_limit(self, req: "LaunchRequest") -> int | None:
        """The most requests the runtime runs at once unless told otherwise (data `serving.default_limit`;
        None: no fixed limit)."""
        limit = self.spec.serving.get("default_limit")
        return int(limit) if limit is not None else None

    def concurrency_values(self, req: "LaunchRequest") -> dict[str, Any]:
        """Launch-template values for a server of req.estimate.batch users: the runtime's setting
        (data `serving.value`, a template placeholder) where the load exceeds its default limit."""
        n = req.estimate.batch
        name = self.spec.serving.get("value")
        limit = self.concurrency_limit(req)
        if n <= 1 or not name or (limit is not None and n <= limit):
            return {}
        return {name: n}

    # ------------------------------------------------------------ context

    def rope_args(self, model: ModelSpec, context: int) -> tuple[str, ...] | None:
        """Arguments that stretch the model past its native window with YaRN, as its card asks;
        () when not needed; None when this runtime has no way to set them."""
        if context <= model.context_length:
            return ()
        return None

    def yarn(self, model: ModelSpec) -> dict[str, Any]:
        """The YaRN settings the model card gives: factor and the native window."""
        return {"rope_type": "yarn", "factor": round((model.context_length_extended or model.context_length)
                                                     / model.context_length, 4),
                "original_max_position_embeddings": model.context_length}

    # ------------------------------------------------------------ launch

    def launch(self, req: LaunchRequest) -> Launch:
        """The server command from the data template (runtimes without a module of their own)."""
        from .render import finish

        argv, env = self.fill(self.base_values(req))
        return finish(self, req, [Step("server", tuple(argv), env)])

    def base_values(self, req: LaunchRequest) -> dict[str, Any]:
        default_kv = next(iter(self.spec.kv_cache_types))
        kv = req.kv_cache_type if req.kv_cache_type and req.kv_cache_type != default_kv else None
        return {"context": req.estimate.context, "port": self.spec.default_port, "kv_cache_type": kv,
                **self.concurrency_values(req)}

    def fill(self, values: dict[str, Any], key: str = "argv") -> tuple[list[str], dict[str, str]]:
        """argv and env from the data template; optional groups only where their value is set."""
        spec = self.spec.launch
        present = {k: str(v) for k, v in values.items() if v is not None}
        argv = [part.format(**present) for part in spec[key]]
        for name, group in (spec.get("optional", {}) if key == "argv" else {}).items():
            if values.get(name) is not None:
                argv += [part.format(**present) for part in group]
        env = {k: v.format(**present) for k, v in spec.get("env", {}).items()}
        for name, group in spec.get("optional_env", {}).items():
            if values.get(name) is not None:
                env.update({k: v.format(**present) for k, v in group.items()})
        return argv, env

    def pin_env(self, req: LaunchRequest) -> dict[str, str]:
        """Environment that shows the process only the GPUs its plan uses, on a machine with more.

        NVIDIA: CUDA_VISIBLE_DEVICES in PCI bus order (NVML's order; CUDA's default order is fastest
        first); AMD: HIP_VISIBLE_DEVICES. A MIG instance is named by its UUID, which the machine
        file does not hold: the plan says so in a note instead.
        """
        used = [g for g in req.machine.gpus if g.index in req.placement.gpus]
        if not used or len(used) == len(req.machine.gpus) or any(g.unified_memory for g in used):
            return {}
        if any(g.mig_instance for g in used):
            return {}
        ids = ",".join(str(g.index) for g in used)
        vendor = used[0].vendor
        if vendor == "nvidia":
            return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ids}
        if vendor == "amd":
            return {"HIP_VISIBLE_DEVICES": ids}
        return {}

    def pin_notes(self, req: LaunchRequest) -> tuple[str, ...]:
        used = [g for g in req.machine.gpus if g.index in req.placement.gpus]
        if any(g.mig_instance for g in used):
            g = used[0]
            return (f"MIG instance {g.mig_instance}: start the process with CUDA_VISIBLE_DEVICES set to that "
                    f"instance's UUID (MIG-..., from `nvidia-smi -L`); one instance per process",)
        return ()


def gpu_arch(gpu: Gpu) -> str | None:
    """An AMD GPU's architecture (gfx942, gfx1100, ...): from its name, else the GPU catalog's
    `gfx...` alias for its catalog entry. None when unknown."""
    for word in gpu.name.replace("(", " ").replace(")", " ").split():
        if word.lower().startswith("gfx"):
            return word.lower()
    if gpu.catalog_id:
        from ..catalog import load

        for spec in load().gpus:
            if spec.id == gpu.catalog_id:
                return next((a.lower() for a in spec.aliases if a.lower().startswith("gfx")), None)
    return None
