"""Launch commands checked against the option tables recorded from each runtime's own parser.

The tables live in data/runtime_flags/<runtime>-<version>.yaml, one per runtime version, written by
scripts/dump_runtime_flags.py from the runtime itself (llama.cpp common/arg.cpp, vLLM's and
SGLang's own argparse parsers, mlx_lm/server.py, Ollama's cobra flags and envconfig, lms's
commander options); data/runtime_flags/platform.yaml adds the GPU-selection variables read by the CUDA and
ROCm runtimes. A command passes when every flag is spelt exactly as the parser knows it (no
argparse-style abbreviations), has the values it needs, every value with a fixed set of choices
is one of them, and every environment variable is one the runtime (or its GPU stack) reads.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..catalog import _load_yaml, data_dir

_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_PYTHONS = ("python", "python3")


@dataclass(frozen=True, slots=True)
class Option:
    """One option: all its spellings, how many values it takes and which values it accepts.

    value: none | one | two | optional | many | inline (a value only as --flag=value).  choices: the parser's fixed set (None: any).
    range: numeric bounds {gt, ge, lt, le} the parser enforces.  env: the variable that sets it.
    """

    names: tuple[str, ...]
    value: str
    choices: tuple[str, ...] | None = None
    range: Mapping[str, float] | None = None
    env: str | None = None
    deprecated: str | None = None  # the parser still accepts it but says it is going away

    def accepts(self, value: str) -> bool:
        """Whether `value` is among the choices or, for a number, within the range."""
        numeric = bool(_NUMBER.match(value))
        if self.choices is not None and value in self.choices:
            return True
        if self.range and numeric:
            x = float(value)
            r = self.range
            return not (("gt" in r and x <= r["gt"]) or ("ge" in r and x < r["ge"])
                        or ("lt" in r and x >= r["lt"]) or ("le" in r and x > r["le"]))
        return self.choices is None

    def allowed(self) -> str:
        parts = list(self.choices or ())
        if self.range:
            sym = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
            parts.append("a number " + " and ".join(f"{sym[k]} {v:g}" for k, v in sorted(self.range.items())))
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Program:
    """One command of a runtime (`llama-server`, `vllm serve`, `lms load`) and its options."""

    prefix: tuple[str, ...]
    positionals: float  # how many positional arguments it takes (inf: any number)
    options: Mapping[str, Option]
    equals_values: bool = True  # --flag=value is split (argparse, cobra, commander; not llama.cpp)


@dataclass(frozen=True, slots=True)
class FlagTable:
    """The recorded option set of one runtime version."""

    runtime: str
    version: str
    source: str
    programs: tuple[Program, ...]
    env: frozenset[str]
    env_options: Mapping[str, Option]


def flags_dir() -> Path:
    """data/runtime_flags (in the checkout or the installed package)."""
    return data_dir() / "runtime_flags"


def _version_key(version: str) -> tuple:
    """0.9.0 < 0.33.0: numbers compare as numbers, the rest as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+]", _norm(version)))


def recorded_versions(runtime_id: str) -> list[str]:
    """The versions of `runtime_id` that have a recorded table, oldest first."""
    prefix = f"{runtime_id}-"
    return sorted((p.stem[len(prefix):] for p in flags_dir().glob(f"{prefix}*.yaml")), key=_version_key)


def _norm(version: str) -> str:
    return version[1:] if version[:1] in "vVb" and version[1:2].isdigit() else version


@functools.lru_cache(maxsize=None)
def _platform() -> dict:
    """data/runtime_flags/platform.yaml: GPU-stack variables and operating-system tools."""
    return _load_yaml(flags_dir() / "platform.yaml") or {}


def _platform_env() -> frozenset[str]:
    return frozenset(e["name"] for e in _platform().get("env", []))


def _tool(argv: tuple[str, ...]) -> dict | None:
    """The operating-system tool `argv` runs (setx, launchctl setenv, open ...), or None."""
    for tool in _platform().get("tools", []):
        if Path(argv[0]).name == tool["name"] and (not tool.get("subcommand") or argv[1:2] == (tool["subcommand"],)):
            return tool
    return None


@functools.lru_cache(maxsize=None)
def load_table(runtime_id: str, version: str) -> FlagTable | None:
    """The table of `runtime_id` at `version` (a leading v or b is ignored), or None when none is recorded."""
    match = [v for v in recorded_versions(runtime_id) if _norm(v) == _norm(version)]
    if not match:
        return None
    raw = _load_yaml(flags_dir() / f"{runtime_id}-{match[0]}.yaml")
    programs, env_options = [], {}
    for prefix, prog in raw["programs"].items():
        options = {}
        for o in prog["options"]:
            opt = Option(names=tuple(o["names"]), value=o["value"],
                         choices=tuple(o["choices"]) if o.get("choices") is not None else None,
                         range=o.get("range") or o.get("number_range"), env=o.get("env"),
                         deprecated=o.get("deprecated"))
            options.update({n: opt for n in opt.names})
            if opt.env:
                env_options[opt.env] = opt
        n = prog.get("positionals", 0)
        programs.append(Program(prefix=tuple(prefix.split()), positionals=float("inf") if n == "many" else int(n),
                                options=options, equals_values=bool(prog.get("equals_values", True))))
    programs.sort(key=lambda p: -len(p.prefix))  # longest prefix first: `lms server start` before `lms`
    return FlagTable(runtime=raw["runtime"], version=str(raw["version"]), source=raw["source"],
                     programs=tuple(programs), env=frozenset(raw.get("env", [])) | _platform_env(),
                     env_options=env_options)


def _program(table: FlagTable, argv: list[str]) -> tuple[Program | None, int]:
    """The program `argv` runs and how many leading words name it (python3 reads as python)."""
    words = [Path(argv[0]).name] + argv[1:]
    if words[0] in _PYTHONS:
        words[0] = "python"
    for prog in table.programs:
        n = len(prog.prefix)
        if tuple(words[:n]) == prog.prefix:
            return prog, n
    return None, 0


def _unknown(name: str, prog: Program) -> str:
    """Why a flag is refused: an abbreviation of a real one, or a name the parser lacks."""
    longer = sorted(n for n in prog.options if n.startswith(name) and n.startswith("--") and name.startswith("--"))
    if longer:
        return (f"abbreviated flag {name} (the parser's name is {' or '.join(longer[:3])}; "
                "abbreviations break when a new option shares the prefix)")
    near = difflib.get_close_matches(name, list(prog.options), n=1)
    return f"unknown flag {name}" + (f" (did you mean {near[0]}?)" if near else "")


def check_argv(table: FlagTable, argv: Iterable[str], deprecated: bool = False) -> list[str]:
    """Problems with one command line against `table` (empty when the runtime would accept it).

    deprecated: also report options the parser accepts but marks deprecated (with its advice).
    """
    argv = list(argv)
    if not argv:
        return []
    prog, i = _program(table, argv)
    name = " ".join(argv[:2])
    if prog is None:
        known = ", ".join(" ".join(p.prefix) for p in table.programs)
        return [f"{name}: not a command of {table.runtime} {table.version} (recorded: {known})"]
    where = " ".join(prog.prefix)
    problems, positionals = [], 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            positionals += len(argv) - i
            break
        if not tok.startswith("-") or tok == "-" or _NUMBER.match(tok):
            positionals += 1
            continue
        flag, inline = tok, None
        if tok.startswith("--") and "=" in tok:
            if prog.equals_values:
                flag, inline = tok.split("=", 1)
            else:
                problems.append(f"{where}: {tok}: this parser takes no --flag=value form; pass the value separately")
                continue
        opt = prog.options.get(flag)
        if opt is None:
            problems.append(f"{where}: {_unknown(flag, prog)}")
            # read on as the parser would: an abbreviation as its option, else a value after it as its own
            full = [n for n in prog.options if n.startswith(flag) and flag.startswith("--")]
            if len({id(prog.options[n]) for n in full}) == 1:
                opt = prog.options[full[0]]
            else:
                if inline is None and i < len(argv) and not argv[i].startswith("-"):
                    i += 1
                continue
        if deprecated and opt.deprecated:
            problems.append(f"{where}: {flag} is deprecated in {table.runtime} {table.version}: {opt.deprecated}")
        values: list[str] = []
        if opt.value == "inline":
            values = [inline] if inline is not None else []
        elif opt.value == "none":
            if inline is not None:
                problems.append(f"{where}: {flag} takes no value")
        elif inline is not None:
            values = [inline]
        elif opt.value in ("one", "two"):
            need = 2 if opt.value == "two" else 1
            values = argv[i:i + need]
            i += len(values)
            if len(values) < need:
                problems.append(f"{where}: {flag} needs {need} value{'s' if need > 1 else ''}")
        elif opt.value == "optional":
            if i < len(argv) and not argv[i].startswith("-"):
                values = [argv[i]]
                i += 1
        else:  # many
            while i < len(argv) and (not argv[i].startswith("-") or _NUMBER.match(argv[i])):
                values.append(argv[i])
                i += 1
            if not values:
                problems.append(f"{where}: {flag} needs at least one value")
        for v in values:
            if not opt.accepts(v):
                problems.append(f"{where}: {flag} {v!r} is not accepted (allowed: {opt.allowed()})")
    if positionals > prog.positionals:
        problems.append(f"{where}: {positionals} positional arguments, the parser takes {prog.positionals:g}")
    if prog.prefix == ("python",) and len(argv) > 2 and argv[1] == "-c":
        try:
            compile(argv[2], "<python -c>", "exec")
        except SyntaxError as e:
            problems.append(f"python -c: the snippet is not valid Python ({e.msg}, column {e.offset})")
    return problems


def check_env(table: FlagTable, env: Mapping[str, str]) -> list[str]:
    """Problems with environment variables: ones the runtime does not read, or values it refuses."""
    problems = []
    for key, value in sorted(env.items()):
        if key not in table.env:
            near = difflib.get_close_matches(key, sorted(table.env), n=1)
            problems.append(f"environment: {table.runtime} {table.version} does not read {key}"
                            + (f" (did you mean {near[0]}?)" if near else ""))
            continue
        opt = table.env_options.get(key)
        if opt is not None and not opt.accepts(str(value)):
            problems.append(f"environment: {key}={value!r} is not accepted (allowed: {opt.allowed()})")
    return problems


def _steps(launch: Any) -> list[tuple[tuple[str, ...], Mapping[str, str]]]:
    steps = getattr(launch, "steps", None) or ()
    out = [(tuple(s.argv), dict(s.env)) for s in steps if getattr(s, "argv", None)]
    if not out:
        out = [(tuple(launch.argv), dict(getattr(launch, "env", {}) or {}))]
    return out


def check_launch(runtime_id: str, version: str | None, launch: Any, deprecated: bool = False) -> list[str]:
    """Every problem the runtime's own parser would raise with `launch`, over all its steps.

    runtime_id: data/runtimes.yaml id (llama.cpp, ollama, lm-studio, vllm, sglang, transformers,
    mlx-lm).  version: the runtime version the plan targets; None picks the newest recorded one.
    launch: an object with `steps` (each with `argv` and `env`) or with `argv` and `env`. A step
    that runs an operating-system tool of data/runtime_flags/platform.yaml (setx, launchctl
    setenv, open, osascript) is not parsed as the runtime; a variable it sets is checked.
    deprecated: also report options the runtime still accepts but marks deprecated.
    Returns human-readable problems, empty when the runtime would accept every step; a version
    with no recorded table is itself a problem (rerun scripts/dump_runtime_flags.py for it).
    """
    versions = recorded_versions(runtime_id)
    if version is None and versions:
        version = versions[-1]
    table = load_table(runtime_id, version) if version else None
    if table is None:
        return [f"no option table recorded for {runtime_id} {version} "
                f"(recorded: {', '.join(versions) or 'none'}); record it with scripts/dump_runtime_flags.py"]
    problems = []
    for argv, env in _steps(launch):
        tool = _tool(argv)
        if tool is None:
            problems += check_argv(table, argv, deprecated)
        elif tool.get("sets_env"):
            at = tool["sets_env"]
            if len(argv) <= max(at["name"], at["value"]):
                problems.append(f"{' '.join(argv[:2])}: needs a variable name and a value")
            else:
                problems += check_env(table, {argv[at["name"]]: argv[at["value"]]})
        problems += check_env(table, env)
    return problems
