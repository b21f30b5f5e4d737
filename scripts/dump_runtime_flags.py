"""Record each runtime's real option set per version into data/runtime_flags/<runtime>-<version>.yaml.

Each table lists the options a runtime's command-line parser accepts (all spellings, whether the
option takes a value, the allowed values where the parser has choices) and the environment
variables the runtime reads, with a header naming the source it was read from and the command
that wrote it. planner/runtimes/flags.py checks launch commands against these tables.

Nothing is built. vLLM and SGLang are read from their own parsers when --python names an
interpreter that can import them, else from their source with ast; the others from source text.

  llama-server  SDIST       the llama-cpp-python sdist from PyPI, which vendors llama.cpp:
                              pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d DIR
                            parses vendor/llama.cpp/common/arg.cpp (the common_arg entries whose
                            examples include the server) and the getenv() calls of the sources.
  vllm          WHEEL       the vLLM wheel (pip download --no-deps vllm==0.33.0 -d DIR); reads
                            vllm/engine/arg_utils.py, vllm/entrypoints/common/cli_args.py,
                            vllm/entrypoints/cli/serve.py, vllm/config/*.py and vllm/envs.py with ast.
  sglang        WHEEL       the SGLang wheel (pip download --no-deps sglang==0.5.23 -d DIR); reads
                            ServerArgs.add_cli_args in sglang/srt/server_args.py with ast.
  mlx-lm        WHEEL       the mlx-lm wheel (pip download --no-deps mlx-lm==0.32.2 -d DIR); reads
                            the argparse parser of mlx_lm/server.py with ast.
  ollama        GIT_DIR     a git clone of github.com/ollama/ollama; reads cmd/cmd.go (cobra flags
                            of serve, run, pull) and envconfig/config.go (environment variables).
  lm-studio     GIT_DIR     a git clone of github.com/lmstudio-ai/lms; reads the commander options
                            of src/subcommands/{get,load,server}.ts and their shared option helpers.
  transformers  WHEEL       the transformers wheel (pip download --no-deps transformers -d DIR): the
                            plan runs a `python -c` snippet; records the interpreter options used
                            and the `transformers serve` options from transformers/cli/serve.py.

  --commit REV  (git sources) read that revision; default HEAD.
  --repo O/N    (git sources) the GitHub owner/name, when the clone has no github.com remote.
  --python PY   (vllm, sglang) an interpreter in which that version is installed, e.g. a throwaway
                venv: pip install torch (CPU) and the wheel with --no-deps, then whatever its import
                asks for. The table then comes from the runtime's own argparse parser (every
                spelling it accepts, hidden ones included); the wheel still gives the version,
                the bounds checked at startup and the deprecation notes.
  --out DIR     where to write (default: data/runtime_flags next to this script's checkout).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ sources


class Source:
    """Read-only view of files inside an sdist, a wheel or a git revision."""

    def __init__(self, path: str, commit: str = "HEAD"):
        self.path = Path(path)
        self.commit = commit
        if self.path.is_dir():
            self.kind = "git"
            self.commit = _git(self.path, "rev-parse", commit).strip()
        elif self.path.name.endswith(".whl"):
            self.kind = "wheel"
            self._zip = zipfile.ZipFile(self.path)
        elif self.path.name.endswith((".tar.gz", ".tgz")):
            self.kind = "sdist"
            self._tar = tarfile.open(self.path)
            self._names = {m.name: m for m in self._tar.getmembers() if m.isfile()}
        else:
            raise SystemExit(f"{path}: expected an sdist (.tar.gz), a wheel (.whl) or a git directory")

    def names(self) -> list[str]:
        if self.kind == "git":
            return _git(self.path, "ls-tree", "-r", "--name-only", self.commit).split("\n")
        if self.kind == "wheel":
            return self._zip.namelist()
        return list(self._names)

    def read(self, name: str) -> str:
        if self.kind == "git":
            return _git(self.path, "show", f"{self.commit}:{name}")
        if self.kind == "wheel":
            return self._zip.read(name).decode()
        return self._tar.extractfile(self._names[name]).read().decode()

    def find(self, suffix: str) -> str:
        hits = [n for n in self.names() if n.endswith(suffix)]
        if len(hits) != 1:
            raise SystemExit(f"{self.path.name}: expected one file ending in {suffix}, found {len(hits)}")
        return hits[0]


def _git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True).stdout


REPO: str | None = None  # owner/name of a git source, from --repo


def _remote(path: Path) -> str:
    if REPO:
        return REPO
    try:
        url = _git(path, "config", "--get", "remote.origin.url").strip()
    except subprocess.CalledProcessError:
        return path.name
    m = re.search(r"github\.com[:/]([^/]+/[^/.]+)", url)
    return m.group(1) if m else url


# ------------------------------------------------------------------ table helpers


def _option(names, value="one", choices=None, env=None, **extra) -> dict:
    out = {"names": list(names), "value": value}
    if choices is not None:
        out["choices"] = [str(c) for c in choices]
    if env:
        out["env"] = env
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _deprecation(help_text, action: str | None = None, new_flag=None, names=()) -> str | None:
    """A short note when the parser marks an option deprecated: its action, or its help text
    opening with "Deprecated", ending "(DEPRECATED)", or saying "<this option> is deprecated"."""
    text = help_text if isinstance(help_text, str) else ""
    own = "|".join(re.escape(n) for n in names) or "(?!)"
    marked = re.search(rf"^\W*deprecated\b|\(deprecated\)|(?:{own}) is deprecated", text.strip(), re.I)
    if not marked and "Deprecated" not in (action or ""):
        return None
    note = " ".join(text.split())
    if new_flag:
        note = f"use {new_flag}" + (f" ({note})" if note else "")
    return (note[:157] + "...") if len(note) > 160 else (note or "deprecated")


def _merge(options: list[dict]) -> list[dict]:
    """One entry per spelling: a later entry with a spelling seen before is dropped."""
    seen: set[str] = set()
    out = []
    for opt in options:
        names = [n for n in opt["names"] if n not in seen]
        if not names:
            continue
        seen.update(names)
        out.append({**opt, "names": names})
    return sorted(out, key=lambda o: o["names"][-1].lstrip("-"))


# ------------------------------------------------------------------ C++ (llama.cpp common/arg.cpp)

_CPP_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/|.', re.S)


def _balanced(text: str, start: int) -> int:
    """Index just past the bracket that closes the one at text[start], skipping strings/comments."""
    depth = 0
    for m in _CPP_TOKEN.finditer(text, start):
        t = m.group()
        if t in "({[":
            depth += 1
        elif t in ")}]":
            depth -= 1
            if depth == 0:
                return m.end()
    raise ValueError("unbalanced")


def _split_top(text: str) -> list[str]:
    """Split on top-level commas (outside brackets and strings)."""
    parts, depth, cur = [], 0, []
    for m in _CPP_TOKEN.finditer(text):
        t = m.group()
        if t.startswith(("//", "/*")):
            continue
        if t in "({[":
            depth += 1
        elif t in ")}]":
            depth -= 1
        if t == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(t)
    parts.append("".join(cur).strip())
    return parts


def _strings(text: str) -> list[str]:
    return re.findall(r'"((?:\\.|[^"\\])*)"', text)


def _hint_choices(hint: str | None) -> list[str] | None:
    if not hint:
        return None
    m = re.fullmatch(r"\[([\w.-]+(?:\|[\w.-]+)+)\]|<([\w.-]+(?:\|[\w.-]+)+)>|\{\s*([\w.-]+(?:\s*,\s*[\w.-]+)+)\s*\}", hint)
    if not m:
        return None
    body = m.group(1) or m.group(2) or m.group(3)
    return [c.strip() for c in re.split(r"[|,]", body)]


def llama_server(src: Source) -> dict:
    arg_cpp_name = src.find("vendor/llama.cpp/common/arg.cpp")
    text = src.read(arg_cpp_name)
    named_lists = {m.group(1): re.findall(r"LLAMA_EXAMPLE_\w+", m.group(2)) for m in re.finditer(
        r"std::initializer_list<enum llama_example>\s+(\w+)\s*=\s*\{([^}]*)\}", text)}
    kv = re.search(r"kv_cache_types\s*=\s*\{([^}]*)\}", text)
    kv_types = [t.lower() for t in re.findall(r"GGML_TYPE_(\w+)", kv.group(1))]
    # on|off|auto options are parsed by is_truthy/is_falsey/is_autoy: the spellings those accept
    spellings = {f: re.findall(r'value == "([^"]*)"', body) for f, body in re.findall(
        r"bool common_arg_utils::(is_truthy|is_falsey|is_autoy)\(const std::string & value\) \{(.*?)\}", text, re.S)}
    options = []
    for m in re.finditer(r"add_opt\(\s*common_arg\(", text):
        ctor_open = m.end() - 1
        ctor_end = _balanced(text, ctor_open)
        call_end = _balanced(text, m.start() + len("add_opt"))
        chain = text[ctor_end:call_end]
        args = _split_top(text[ctor_open + 1:ctor_end - 1])
        names = _strings(args[0])
        neg = _strings(args[1]) if args[1].startswith("{") else []
        n = len(args)
        if neg:
            value, hint = "none", None
        elif n == 3:
            value, hint = "none", None
        elif n == 4:
            value, hint = "one", (_strings(args[1]) or [None])[0]
        elif n == 5:
            value, hint = "two", (_strings(args[1]) or [None])[0]
        else:
            raise SystemExit(f"unexpected common_arg with {n} arguments: {names}")
        examples = {"LLAMA_EXAMPLE_COMMON"}
        ex = re.search(r"\.set_examples\(\s*(\{[^}]*\}|\w+)\s*\)", chain)
        if ex:
            examples = set(re.findall(r"LLAMA_EXAMPLE_\w+", ex.group(1))) or set(named_lists[ex.group(1)])
        excludes = set()
        exc = re.search(r"\.set_excludes\(\s*\{([^}]*)\}\s*\)", chain)
        if exc:
            excludes = set(re.findall(r"LLAMA_EXAMPLE_\w+", exc.group(1)))
        if "LLAMA_EXAMPLE_SERVER" in excludes or not examples & {"LLAMA_EXAMPLE_SERVER", "LLAMA_EXAMPLE_COMMON"}:
            continue
        if ".set_preset_only()" in chain:
            continue
        env = re.search(r'\.set_env\(\s*"(\w+)"\s*\)', chain)
        choices = _hint_choices(hint)
        used = [f for f in ("is_truthy", "is_falsey", "is_autoy") if f + "(" in args[-1]]
        if used and "throw" in args[-1]:
            choices = [v for f in used for v in spellings[f]]
        if any(n in ("-ctk", "-ctv", "-ctkd", "-ctvd") for n in names):
            choices = kv_types
        # options that name the server explicitly come first, so they win over a common twin
        help_text = " ".join(_strings(args[-2]))
        deprecated = None
        if "DEPRECATED" in args[-1] or "deprecated" in help_text.lower():
            deprecated = _deprecation(help_text or "deprecated")
        options.append((0 if "LLAMA_EXAMPLE_SERVER" in examples else 1,
                        _option(names + neg, value, choices, env.group(1) if env else None, metavar=hint,
                                deprecated=deprecated)))
        if env and neg:
            options[-1][1]["env_negated"] = env.group(1).replace("LLAMA_ARG_", "LLAMA_ARG_NO_")
    options = _merge([o for _, o in sorted(options, key=lambda p: p[0])])
    env_vars = sorted({o["env"] for o in options if "env" in o} | {o["env_negated"] for o in options if "env_negated" in o})
    read = set()
    for name in src.names():
        if re.search(r"vendor/llama\.cpp/(common|tools/server|src|ggml/src)/.*\.(c|cpp|h|m)$", name):
            read |= set(re.findall(r'getenv\(\s*"(\w+)"', src.read(name)))
    top = [n for n in src.names() if re.fullmatch(r"[^/]+/CHANGELOG\.md", n)]
    changelog = src.read(top[0]) if top else ""
    version = re.search(r"## \[[\d.]+\]\s+- feat: update llama.cpp to ggml-org/llama\.cpp@(\w+)", changelog)
    checked = _check_server_readme(src, options)
    sdist = src.path.name
    return {
        "runtime": "llama.cpp",
        "version": version.group(1) if version else "unknown",
        "source": f"PyPI sdist {sdist}: {arg_cpp_name.split('/', 1)[1]} (llama.cpp commit named in its CHANGELOG.md)",
        "command": f"python scripts/dump_runtime_flags.py llama-server {sdist}",
        **({"checked_against": checked} if checked else {}),
        # the parser splits no --flag=value and takes no positional argument (common_params_parse_ex)
        "programs": {"llama-server": {"positionals": 0, "equals_values": False, "options": options}},
        "env": sorted(set(env_vars) | read),
    }


def _check_server_readme(src: Source, options: list[dict]) -> str | None:
    """Compare with the option table of tools/server/README.md (generated from the same parser by
    llama-gen-docs): every spelling must match, else the C++ reading is wrong and nothing is written."""
    readme = [n for n in src.names() if n.endswith("vendor/llama.cpp/tools/server/README.md")]
    if not readme:
        return None
    rows, spellings = 0, set()
    for line in src.read(readme[0]).splitlines():
        m = re.match(r"\| `(-[^`]*)`", line)
        if m:
            rows += 1
            spellings |= {p.split(" ")[0] for p in m.group(1).split(", ") if p.startswith("-")}
    mine = {n for o in options for n in o["names"]}
    if spellings != mine or rows != len(options):
        raise SystemExit(f"arg.cpp reading disagrees with {readme[0]}: only in README {sorted(spellings - mine)}, "
                         f"only in arg.cpp {sorted(mine - spellings)}, rows {rows} vs options {len(options)}")
    return f"{readme[0].split('/', 1)[1]}: the same {rows} options and {len(mine)} spellings"


# ------------------------------------------------------------------ Python (argparse, read with ast)


def _const(node, names: dict | None = None):
    """A literal value (str/number/list/tuple/Literal[...]) or None when it is not a literal."""
    names = names or {}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        pass
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return [e.value for e in elts if isinstance(e, ast.Constant)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "sorted", "tuple") \
            and node.args:
        inner = _const(node.args[0], names)
        return list(inner) if isinstance(inner, (list, tuple, dict)) else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "keys":
        inner = _const(node.func.value, names)
        return list(inner) if isinstance(inner, dict) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _const(node.left, names), _const(node.right, names)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return list(a) + list(b)
    return None


def _module_names(tree: ast.Module, imported: dict | None = None) -> dict:
    """Module-level NAME = <literal> / Literal[...] bindings (aliases of Literal types included)."""
    names = dict(imported or {})
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        elif type(node).__name__ == "TypeAlias":
            target, value = node.name.id, node.value
        if target:
            v = _const(value, names)
            if v is not None:
                names[target] = v
    return names


def _argparse_value(kw: dict[str, ast.AST], names: dict) -> tuple[str, list | None, bool]:
    """(value arity, choices, adds --no-X) from add_argument keywords."""
    action = kw.get("action")
    action_name = None
    if isinstance(action, ast.Constant):
        action_name = action.value
    elif isinstance(action, (ast.Attribute, ast.Name)):
        action_name = action.attr if isinstance(action, ast.Attribute) else action.id
    choices = _const(kw["choices"], names) if "choices" in kw else None
    if isinstance(choices, dict):
        choices = list(choices)
    if action_name in ("store_true", "store_false", "store_const", "count", "help", "version") or \
            re.search(r"Store(True|False)Action$", action_name or ""):
        return "none", None, False
    if action_name == "BooleanOptionalAction":
        return "none", None, True
    nargs = _const(kw["nargs"]) if "nargs" in kw else None
    if nargs == "?":
        value = "optional"
    elif nargs in ("*", "+") or action_name in ("append", "extend"):
        value = "many"
    elif isinstance(nargs, int) and nargs != 1:
        value = "none" if nargs == 0 else "many"
    else:
        value = "one"
    return value, choices, False


def _argparse_options(calls, names: dict, field_kwargs=None) -> tuple[list[dict], int]:
    """Options and positional count from `add_argument` Call nodes."""
    options, positionals = [], 0
    for call in calls:
        flags = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        spread = [k.value for k in call.keywords if k.arg is None]
        while any(isinstance(s, ast.Dict) for s in spread):  # **{**kwargs["field"], "default": None}
            d = next(s for s in spread if isinstance(s, ast.Dict))
            spread.remove(d)
            for key, val in zip(d.keys, d.values):
                if key is None:
                    spread.append(val)
                elif isinstance(key, ast.Constant):
                    kw[key.value] = val
        if flags and not flags[0].startswith("-"):
            positionals += 1
            continue
        info = {}
        for s in spread:
            if field_kwargs is not None:
                info = field_kwargs(s) or info
        value, choices, negatable = _argparse_value(kw, names)
        if info and not ({"action", "nargs", "choices"} & set(kw)):
            value, choices, negatable = info["value"], info.get("choices"), info.get("negatable", False)
        extra_flags = info.get("flags", [])
        all_flags = extra_flags + flags
        if not all_flags:
            continue
        action = ast.unparse(kw["action"]) if "action" in kw else None
        note = _deprecation(_const(kw["help"], names) if "help" in kw else None, action,
                            _const(kw["new_flag"], names) if "new_flag" in kw else None, all_flags)
        opt = _option(all_flags, value, choices, range=info.get("range"), deprecated=note)
        if negatable:
            opt["names"] += ["--no-" + f[2:] for f in all_flags if f.startswith("--")]
        options.append(opt)
    return options, positionals


def _calls(node: ast.AST, attr: str = "add_argument") -> list[ast.Call]:
    found = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == attr]
    return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def _function(tree: ast.AST, name: str, cls: str | None = None) -> ast.AST:
    scope = tree
    if cls:
        scope = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    return next(n for n in ast.walk(scope) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)


def _wheel_version(src: Source) -> str:
    meta = src.find(".dist-info/METADATA")
    return re.search(r"^Version: (\S+)", src.read(meta), re.M).group(1)


# ---- vLLM: options built from config dataclasses by get_kwargs()


class _Dataclasses:
    """Field annotations and Field() bounds of vLLM's config classes, read with ast."""

    def __init__(self, src: Source, files: list[str]):
        self.fields: dict[str, dict[str, tuple[ast.AST, ast.AST | None]]] = {}
        self.bases: dict[str, list[str]] = {}
        self.names: dict = {}
        trees = [(f, ast.parse(src.read(f))) for f in files]
        for _, tree in trees:  # Literal aliases first, from every file (they are imported across files)
            self.names = _module_names(tree, self.names)
        for _, tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
                    self.fields[node.name] = {s.target.id: (s.annotation, s.value) for s in node.body
                                              if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}

    def field(self, cls: str, name: str):
        for c in [cls, *self.bases.get(cls, [])]:
            if name in self.fields.get(c, {}):
                return self.fields[c][name]
            if c != cls:
                hit = self.field(c, name)
                if hit:
                    return hit
        return None

    def all_fields(self, cls: str) -> list[str]:
        out = []
        for b in reversed(self.bases.get(cls, [])):
            out += [f for f in self.all_fields(b) if f not in out]
        return out + [f for f in self.fields.get(cls, {}) if f not in out and not f.startswith("_")]

    def kwargs(self, cls: str, name: str) -> dict:
        """Emulates vllm.engine.arg_utils._compute_kwargs for one field."""
        ann, default = self.field(cls, name) or (None, None)
        if ann is None:
            return {"value": "one"}
        parts = self._union(ann)
        kinds = {p if isinstance(p, str) else "literal" for p in parts}
        out: dict = {}
        if kinds >= {"bool", "str"} and kinds <= {"bool", "str", "None"}:
            out["value"] = "optional"
        elif "bool" in kinds:
            out.update(value="none", negatable=True)
        elif "literal" in kinds:
            choices = [c for p in parts if not isinstance(p, str) for c in p]
            out.update(value="one", choices=choices + ([None] if "None" in kinds else []))
        elif kinds & {"list", "tuple", "set"}:
            out["value"] = "many"
        else:
            out["value"] = "one"
        if out.get("choices"):
            out["choices"] = [str(c) if c is not None else "None" for c in out["choices"]]
        if isinstance(default, ast.Call) and getattr(default.func, "id", None) == "Field":
            bounds = {k.arg: _const(k.value) for k in default.keywords if k.arg in ("gt", "ge", "lt", "le")}
            if bounds:
                out["range"] = bounds
        return out

    def _union(self, ann: ast.AST) -> list:
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            return self._union(ann.left) + self._union(ann.right)
        if isinstance(ann, ast.Constant) and ann.value is None:
            return ["None"]
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            return self._union(ast.parse(ann.value, mode="eval").body)
        if isinstance(ann, ast.Subscript):
            head = ann.value.id if isinstance(ann.value, ast.Name) else getattr(ann.value, "attr", "")
            if head == "Literal":
                return [_const(ann, self.names)]
            if head in ("Optional",):
                return self._union(ann.slice) + ["None"]
            if head in ("Union",):
                return [p for e in ann.slice.elts for p in self._union(e)]
            if head == "Annotated":
                return self._union(ann.slice.elts[0])
            return [{"List": "list", "Tuple": "tuple", "Set": "set", "Dict": "dict"}.get(head, head.lower())]
        if isinstance(ann, ast.Name):
            if ann.id in self.names and isinstance(self.names[ann.id], list):
                return [self.names[ann.id]]
            return [ann.id if ann.id in ("bool", "str", "int", "float", "list", "tuple", "set", "dict") else "obj"]
        return ["obj"]


def _vllm_ast(src: Source) -> dict:
    version = _wheel_version(src)
    cfg_files = [n for n in src.names() if re.match(r"vllm/config/\w+\.py$", n)]
    frontend = "vllm/entrypoints/common/cli_args.py"
    dc = _Dataclasses(src, cfg_files + [frontend, "vllm/engine/arg_utils.py"])
    arg_utils = ast.parse(src.read("vllm/engine/arg_utils.py"))
    add = _function(arg_utils, "add_cli_args", "EngineArgs")
    bound: dict[str, tuple[str, str | None]] = {}  # variable -> (config class, field or None)
    for node in ast.walk(add):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            v = node.value
            field = None
            if isinstance(v, ast.Subscript):
                field, v = _const(v.slice), v.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", None) == "get_kwargs" and v.args:
                bound[node.targets[0].id] = (v.args[0].id, field)

    def field_kwargs(spread: ast.AST):
        if isinstance(spread, ast.Subscript) and isinstance(spread.value, ast.Name) and spread.value.id in bound:
            return dc.kwargs(bound[spread.value.id][0], _const(spread.slice))
        if isinstance(spread, ast.Name) and spread.id in bound and bound[spread.id][1]:
            return dc.kwargs(*bound[spread.id])
        return None

    options, _ = _argparse_options(_calls(add), dc.names, field_kwargs)
    # AsyncEngineArgs adds its own options after EngineArgs'
    try:
        options += _argparse_options(_calls(_function(arg_utils, "add_cli_args", "AsyncEngineArgs")), dc.names)[0]
    except StopIteration:
        pass
    # The frontend: one --<field> per FrontendArgs field, plus the extra flags of _customize_cli_kwargs
    cli = ast.parse(src.read(frontend))
    extra_flags: dict[str, list[str]] = {}
    for node in ast.walk(cli):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            t = node.targets[0]
            if _const(t.slice) == "flags" and isinstance(t.value, ast.Subscript):
                extra_flags[_const(t.value.slice)] = _const(node.value) or []
    for f in dc.all_fields("FrontendArgs"):
        info = dc.kwargs("FrontendArgs", f)
        opt = _option(extra_flags.get(f, []) + [f"--{f.replace('_', '-')}"], info["value"], info.get("choices"),
                      range=info.get("range"))
        if info.get("negatable"):
            opt["names"].append(f"--no-{f.replace('_', '-')}")
        options.append(opt)
    serve_opts, positionals = _argparse_options(_calls(_function(cli, "make_arg_parser")), dc.names)
    options += serve_opts
    serve = ast.parse(src.read("vllm/entrypoints/cli/serve.py"))
    options += _argparse_options(_calls(serve), dc.names)[0]
    envs = ast.parse(src.read("vllm/envs.py"))
    env = set()
    for node in ast.walk(envs):
        if isinstance(node, ast.Dict):
            keys = [_const(k) for k in node.keys if k is not None]
            if sum(isinstance(k, str) and k.startswith("VLLM_") for k in keys) > 20:
                env |= {k for k in keys if isinstance(k, str)}
    env |= set(re.findall(r'os\.environ(?:\.get)?\[?\(?\s*"([A-Z][A-Z0-9_]+)"', src.read("vllm/envs.py")))
    whl = src.path.name
    return {
        "runtime": "vllm",
        "version": version,
        "source": f"PyPI wheel {whl}: vllm/engine/arg_utils.py (EngineArgs.add_cli_args, get_kwargs), "
                  "vllm/entrypoints/common/cli_args.py (FrontendArgs, make_arg_parser), vllm/entrypoints/cli/serve.py, "
                  "vllm/config/*.py (field types: bool -> --X/--no-X, Literal -> choices, Field bounds), vllm/envs.py; "
                  "read with ast, not imported (vLLM needs its own torch build)",
        "command": f"python scripts/dump_runtime_flags.py vllm {whl}",
        "programs": {"vllm serve": {"positionals": positionals, "options": _merge(options)}},
        "env": sorted(env),
    }


def _import_names(src: Source, tree: ast.Module, names: dict) -> dict:
    """Bind module-level literals imported from sibling sglang modules (choices lists)."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sglang"):
            path = node.module.replace(".", "/") + ".py"
            if path in src.names():
                other = _module_names(ast.parse(src.read(path)))
                names.update({a.asname or a.name: other[a.name] for a in node.names if a.name in other})
    return names


def _sglang_field(name: str, ann: ast.Subscript, names: dict) -> dict | None:
    """Emulates sglang.srt.arg_groups.arg_utils.add_cli_args_from_dataclass for one field."""
    elts = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
    meta = next((e for e in elts[1:] if (isinstance(e, ast.Constant) and isinstance(e.value, str))
                 or (isinstance(e, ast.Call) and getattr(e.func, "id", None) == "Arg")), None)
    if meta is None:
        return None
    kw = {k.arg: k.value for k in meta.keywords} if isinstance(meta, ast.Call) else {}
    if _const(kw.get("no_cli", ast.Constant(False))):
        return None
    opt = _sglang_option(name, elts, kw, names)
    if opt is not None:
        help_text = meta.value if isinstance(meta, ast.Constant) else _const(kw["help"], names) if "help" in kw else None
        note = _deprecation(help_text, ast.unparse(kw["action"]) if "action" in kw else None, None, opt["names"])
        if note:
            opt["deprecated"] = note
    return opt


def _sglang_option(name: str, elts: list, kw: dict, names: dict) -> dict | None:
    names_ = [_const(kw["cli_name"]) if "cli_name" in kw else "--" + name.replace("_", "-")]
    names_ += _const(kw["aliases"]) or [] if "aliases" in kw else []
    choices = _const(kw["choices"], names) if "choices" in kw else None
    inner = elts[0]
    if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
        inner = ast.parse(inner.value, mode="eval").body
    text = ast.unparse(inner)
    core = re.sub(r"^Optional\[(.*)\]$|^(.*?)\s*\|\s*None$|^None\s*\|\s*(.*)$",
                  lambda m: next(g for g in m.groups() if g), text)
    if "action" in kw:
        action = ast.unparse(kw["action"])
        if re.search(r"store_true|store_false|StoreTrue|StoreConst|BooleanOptional|count", action):
            value = "none"
        else:
            value = "one"
        opt = _option(names_, value, choices)
        if "BooleanOptional" in action:
            opt["names"] += ["--no-" + n[2:] for n in names_ if n.startswith("--")]
        return opt
    if core.startswith("Literal["):
        lit = _const(ast.parse(core, mode="eval").body, names) or []
        return _option(names_, "one", choices or lit)
    if re.match(r"(list|List)\b", core) and "type_parser" not in kw:
        nargs = _const(kw["nargs"]) if "nargs" in kw else "+"
        return _option(names_, "optional" if nargs == "?" else "many", choices)
    if core == "bool":
        return _option(names_, "none")
    nargs = _const(kw["nargs"]) if "nargs" in kw else None
    value = "optional" if nargs == "?" else "many" if nargs in ("*", "+") else "one"
    return _option(names_, value, choices)


def _sglang_ast(src: Source) -> dict:
    version = _wheel_version(src)
    name = "sglang/srt/server_args.py"
    tree = ast.parse(src.read(name))
    names = _import_names(src, tree, _module_names(tree))
    options = []
    # ServerArgs is assembled from the namespace classes in arg_groups/fields/: every field annotated
    # A[T, "help"] or A[T, Arg(...)] becomes an option (add_cli_args_from_dataclass)
    field_files = sorted(n for n in src.names() if re.search(r"sglang/srt/arg_groups/fields/\w+\.py$", n))
    for path in field_files + [name]:
        ftree = ast.parse(src.read(path))
        fnames = _import_names(src, ftree, _module_names(ftree, names))
        for cls in (n for n in ast.walk(ftree) if isinstance(n, ast.ClassDef)):
            for stmt in cls.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) \
                        and isinstance(stmt.annotation, ast.Subscript) \
                        and getattr(stmt.annotation.value, "id", None) in ("A", "Annotated"):
                    opt = _sglang_field(stmt.target.id, stmt.annotation, fnames)
                    if opt:
                        options.append(opt)
    add = _function(tree, "add_cli_args", "ServerArgs")
    options += _argparse_options(_calls(add), names)[0]
    env = set(re.findall(r'"(SGLANG_[A-Z0-9_]+)"', src.read(name)))
    environ = [n for n in src.names() if n.endswith("sglang/srt/environ.py")]
    if environ:
        text = src.read(environ[0])
        env |= set(re.findall(r"^\s+(SGLANG_[A-Z0-9_]+)\s*=\s*Env", text, re.M))
        env |= set(re.findall(r'"(SGLANG_[A-Z0-9_]+)"', text))
    whl = src.path.name
    return {
        "runtime": "sglang",
        "version": version,
        "source": f"PyPI wheel {whl}: sglang/srt/arg_groups/fields/*.py (A[T, Arg(...)] fields, as "
                  "add_cli_args_from_dataclass registers them), ServerArgs.add_cli_args in "
                  f"{name}, sglang/srt/environ.py; read with ast, not imported (SGLang needs its CUDA stack)",
        "command": f"python scripts/dump_runtime_flags.py sglang {whl}",
        "programs": {"python -m sglang.launch_server": {"positionals": 0, "options": _merge(options)}},
        "env": sorted(env),
    }


def mlx_lm(src: Source) -> dict:
    version = _wheel_version(src)
    name = "mlx_lm/server.py"
    tree = ast.parse(src.read(name))
    options, positionals = _argparse_options(_calls(tree), _module_names(tree))
    whl = src.path.name
    return {
        "runtime": "mlx-lm",
        "version": version,
        "source": f"PyPI wheel {whl}: {name} (argparse parser of main()); read with ast",
        "command": f"python scripts/dump_runtime_flags.py mlx-lm {whl}",
        "programs": {"mlx_lm.server": {"positionals": positionals, "options": _merge(options)}},
        "env": sorted(set(re.findall(r'environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]+)"', src.read(name)))),
    }


def transformers(src: Source) -> dict:
    version = _wheel_version(src)
    serve = [n for n in src.names() if re.search(r"transformers/(commands|cli)/serve\.py$", n)]
    programs: dict = {
        # The plan runs `python -c SNIPPET`; the interpreter options are the Python docs' (cmdline.html).
        "python": {"positionals": 0, "options": [_option(["-c"], "one"), _option(["-m"], "one")]},
    }
    if serve:
        tree = ast.parse(src.read(serve[0]))
        opts = []
        for node in ast.walk(tree):  # typer: def serve(name: Annotated[T, typer.Option(...)] = default)
            if not (isinstance(node, ast.arg) and isinstance(node.annotation, ast.Subscript)
                    and getattr(node.annotation.value, "id", None) == "Annotated"):
                continue
            elts = node.annotation.slice.elts
            opt = next((e for e in elts[1:] if isinstance(e, ast.Call) and getattr(e.func, "attr", None) == "Option"),
                       None)
            if opt is None:
                continue
            flags = [a.value for a in opt.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                     and a.value.startswith("-")] or ["--" + node.arg.replace("_", "-")]
            if ast.unparse(elts[0]) == "bool":  # typer: --x/--no-x
                opts.append(_option(flags + ["--no-" + f[2:] for f in flags if f.startswith("--")], "none"))
            else:
                opts.append(_option(flags, "one"))
        programs["transformers serve"] = {"positionals": 1, "options": _merge(opts)}
    whl = src.path.name
    return {
        "runtime": "transformers",
        "version": version,
        "source": f"PyPI wheel {whl}: {serve[0] if serve else '(no serve command)'}; the python interpreter's "
                  "-c/-m from docs.python.org/3/using/cmdline.html",
        "command": f"python scripts/dump_runtime_flags.py transformers {whl}",
        "programs": programs,
        "env": [],
    }


# ------------------------------------------------------------------ Go (ollama, cobra)


def ollama(src: Source) -> dict:
    cmd = src.read("cmd/cmd.go")
    programs: dict = {}
    # cobra: <var>.Flags().<Kind>[P]("name", ["x",] default, "usage")
    flags_of: dict[str, list[dict]] = {}
    # pflag: a flag with NoOptDefVal takes its value only as --flag=value (a bare --flag uses the default)
    inline_only = set(re.findall(r'Lookup\("([\w-]+)"\)\.NoOptDefVal\s*=', cmd))
    for m in re.finditer(r'(\w+)\.Flags\(\)\.(\w+?)(P?)\(\s*"([\w-]+)"\s*,\s*(?:"(\w)"\s*,)?', cmd):
        var, kind, short, name, letter = m.groups()
        value = "none" if kind.startswith("Bool") else "inline" if name in inline_only else "one"
        names = [f"--{name}"] + ([f"-{letter}"] if short and letter else [])
        flags_of.setdefault(var, []).append(_option(names, value))
    commands, positionals = {}, {}
    for m in re.finditer(r'(\w+)\s*:?=\s*&cobra\.Command\{\s*Use:\s*"(\w+)', cmd):
        commands[m.group(1)] = m.group(2)
        # cobra's argument check: ExactArgs(n), MinimumNArgs(n) (no upper bound), NoArgs, ...
        body = cmd[m.end():]
        body = body[:re.search(r"\n\t}|$", body).start()]  # this command's struct literal only
        args = re.search(r"Args:\s*cobra\.(\w+)(?:\((\d+)(?:,\s*(\d+))?\))?", body)
        if args:
            kind, a, b = args.groups()
            positionals[m.group(1)] = {"ExactArgs": a, "MaximumNArgs": a, "RangeArgs": b, "NoArgs": 0}.get(kind, "many")
    for var, use in commands.items():
        if use in ("serve", "run", "pull", "ps", "stop", "list", "show", "create"):
            # every command has cobra's -h/--help
            opts = flags_of.get(var, []) + [_option(["-h", "--help"], "none")]
            n = positionals.get(var, "many")
            programs[f"ollama {use}"] = {"positionals": n if n == "many" else int(n), "options": _merge(opts)}
    cfg = src.read("envconfig/config.go")
    env = set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"', cfg))  # String("X"), Uint("X", d), Var("X"), ...
    version = _describe(src)
    return {
        "runtime": "ollama",
        "version": version,
        "source": f"github: {_remote(src.path)} @{src.commit[:9]} ({version}) cmd/cmd.go (cobra flags), "
                  "envconfig/config.go (environment variables)",
        "command": f"python scripts/dump_runtime_flags.py ollama <clone of github.com/{_remote(src.path)}> "
                   f"--commit {src.commit[:9]}",
        "programs": dict(sorted(programs.items())),
        "env": sorted(env),
    }


def _describe(src: Source) -> str:
    try:
        return _git(src.path, "describe", "--tags", src.commit).strip()
    except subprocess.CalledProcessError:
        return src.commit[:9]


# ------------------------------------------------------------------ TypeScript (lms, commander)

_COMMANDER = re.compile(r'(?:new Option|\.option|\.requiredOption)\(\s*"([^"]+)"')


def _commander(text: str) -> list[dict]:
    out = []
    for m in _COMMANDER.finditer(text):
        spec = m.group(1)
        names = re.findall(r"(--?[\w-]+)", spec.split("<")[0].split("[")[0])
        value = "one" if "<" in spec else "optional" if "[" in spec else "none"
        tail = text[m.end():m.end() + 600]
        end = tail.find(".addOption(")
        choices = re.search(r"\.choices\(\s*\[([^\]]*)\]", tail[:end if end >= 0 else None])
        out.append(_option(names, value, re.findall(r'"([^"]+)"', choices.group(1)) if choices else None))
    return out


def lm_studio(src: Source) -> dict:
    helpers = {"addLogLevelOptions": "src/logLevel.ts", "addCreateClientOptions": "src/createClient.ts"}
    programs = {}
    for cmd, path in (("lms get", "src/subcommands/get.ts"), ("lms load", "src/subcommands/load.ts"),
                      ("lms unload", "src/subcommands/unload.ts"), ("lms server start", "src/subcommands/server.ts")):
        text = src.read(path)
        if cmd == "lms server start":  # server.ts defines start, stop and status: take start's part
            text = text[text.index("const start = new Command"):text.index("const stop = new Command")]
        opts = _commander(text) + [_option(["-h", "--help"], "none")]
        for helper, hpath in helpers.items():
            if helper + "(" in text:
                opts += _commander(src.read(hpath))
        args = re.findall(r'\.argument\(\s*"([^"]+)"', text)  # commander: "<name>", "[name]", "[name...]"
        n = "many" if any(a.endswith("...]") or a.endswith("...>") for a in args) else len(args)
        programs[cmd] = {"positionals": n, "options": _merge(opts)}
    load = src.read("src/subcommands/load.ts")
    gpu = next(o for o in programs["lms load"]["options"] if "--gpu" in o["names"])
    if re.search(r'"off"', load) and re.search(r'"max"', load):
        gpu["choices"] = ["off", "max"]
        gpu["number_range"] = {"ge": 0, "le": 1}  # gpuOptionParser: "off", "max" or a number in [0, 1]
    env = set(re.findall(r"\b(LMS_[A-Z0-9_]+)\b", "".join(src.read(n) for n in src.names()
                                                               if n.startswith("src/") and n.endswith(".ts"))))
    version = re.search(r'"version":\s*"([^"]+)"', src.read("package.json")).group(1)
    return {
        "runtime": "lm-studio",
        "version": version,
        "source": f"github: {_remote(src.path)} @{src.commit[:9]} (package.json {version}) "
                  "src/subcommands/{get,load,unload,server}.ts, src/logLevel.ts, src/createClient.ts (commander options)",
        "command": f"python scripts/dump_runtime_flags.py lm-studio <clone of github.com/{_remote(src.path)}> "
                   f"--commit {src.commit[:9]}",
        "programs": programs,
        "env": sorted(env),
    }


# ------------------------------------------------------------------ live argparse parsers (vLLM, SGLang)

# Runs inside an interpreter where the runtime is installed; prints one JSON line. Every spelling the
# parser accepts is read from parser._option_string_actions, which also holds the ones hidden from
# --help (vLLM's --no-enable-x next to --disable-x).
_LIVE_PROBE = r"""
import argparse, json, sys
from importlib.metadata import version
which = sys.argv[1]
if which == "vllm":
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    from vllm.entrypoints.common.cli_args import make_arg_parser
    p = make_arg_parser(FlexibleArgumentParser(allow_abbrev=False))
else:
    from sglang.srt.server_args import ServerArgs
    p = argparse.ArgumentParser(allow_abbrev=False)
    ServerArgs.add_cli_args(p)
groups = {}
for s, a in p._option_string_actions.items():
    groups.setdefault(id(a), [a, []])[1].append(s)
opts = []
for a, strings in groups.values():
    names = [s for s in a.option_strings if s in strings] + [s for s in strings if s not in a.option_strings]
    opts.append({"names": names, "nargs": a.nargs, "cls": type(a).__name__,
                 "choices": None if a.choices is None else [str(c) for c in a.choices],
                 "deprecated": a in getattr(p, "_deprecated", set())})
try:
    import torch
    torch_version = torch.__version__
except ImportError:
    torch_version = None
print(json.dumps({"version": version(which), "torch": torch_version, "options": opts,
                  "positionals": sum(1 for a in p._actions if not a.option_strings)}))
"""

# vLLM checks these values when it builds its config, not in argparse: the literal the validator
# accepts (read from the wheel) is recorded with `checked: startup`.
_VLLM_STARTUP_CHOICES = {
    "--kv-cache-dtype": "vllm/config/cache.py CacheConfig._validate_cache_dtype (the CacheDType literal; "
                        "platforms may register more)",
}


def _live(python: str, which: str) -> dict:
    """The runtime's own parser, built in `python` (an interpreter where the runtime is installed)."""
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu")  # vLLM infers its platform on import: force the CPU one
    done = subprocess.run([python, "-c", _LIVE_PROBE, which], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"could not build the {which} parser with {python}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _live_options(live: dict, ast_table: dict, program: str, startup_choices: dict | None = None) -> list[dict]:
    """Options of the live parser; Field bounds, startup-checked choices and deprecation notes from
    the source reading of the same version (the parser itself does not carry them)."""
    by_name = {n: o for o in ast_table["programs"][program]["options"] for n in o["names"]}
    out = []
    for a in live["options"]:
        if a["names"][0] in ("-h", "--help"):
            continue
        n = a["nargs"]
        value = ("none" if n == 0 else "optional" if n == "?" else "many" if n in ("*", "+") or
                 (isinstance(n, int) and n > 1) else "one")
        src = next((by_name[x] for x in a["names"] if x in by_name), {})
        opt = _option(a["names"], value, a["choices"])
        if a["choices"] is None and a["names"][0] in (startup_choices or {}) and src.get("choices"):
            opt["choices"] = [c for c in src["choices"] if c != "None"]
            opt["checked"] = "startup"
        if src.get("range") and value != "none":
            opt["range"] = src["range"]
            opt["checked"] = "startup"
        if a["deprecated"] or "Deprecated" in a["cls"] or src.get("deprecated"):
            opt["deprecated"] = src.get("deprecated") or "deprecated"
        out.append(opt)
    return _merge(out)


def vllm(src: Source, python: str | None = None) -> dict:
    """vLLM's option table: its own parser when `python` can import vLLM, else a reading of the source."""
    table = _vllm_ast(src)
    if not python:
        return table
    live = _live(python, "vllm")
    if live["version"] != table["version"]:
        raise SystemExit(f"{python} has vllm {live['version']}, the wheel is {table['version']}")
    table["programs"]["vllm serve"] = {"positionals": live["positionals"], "options": _live_options(
        live, table, "vllm serve", _VLLM_STARTUP_CHOICES)}
    whl = src.path.name
    table["source"] = (f"vLLM's own parser, make_arg_parser(FlexibleArgumentParser(allow_abbrev=False)), imported "
                       f"from {whl} installed without dependencies (torch {live['torch']}, VLLM_TARGET_DEVICE=cpu); "
                       "`checked: startup` values (Field bounds, the --kv-cache-dtype literal) and deprecation notes "
                       "read from vllm/config/*.py and vllm/engine/arg_utils.py of the same wheel; "
                       + "; ".join(f"{k}: {v}" for k, v in _VLLM_STARTUP_CHOICES.items()) + "; env from vllm/envs.py")
    table["command"] = f"python scripts/dump_runtime_flags.py vllm {whl} --python <python with vllm {live['version']}>"
    return table


def sglang(src: Source, python: str | None = None) -> dict:
    """SGLang's option table: ServerArgs.add_cli_args when `python` can import SGLang, else a source reading."""
    table = _sglang_ast(src)
    if not python:
        return table
    live = _live(python, "sglang")
    if live["version"] != table["version"]:
        raise SystemExit(f"{python} has sglang {live['version']}, the wheel is {table['version']}")
    prog = "python -m sglang.launch_server"
    table["programs"][prog] = {"positionals": live["positionals"], "options": _live_options(live, table, prog)}
    whl = src.path.name
    table["source"] = (f"SGLang's own parser, ServerArgs.add_cli_args(ArgumentParser(allow_abbrev=False)), imported "
                       f"from {whl} installed without dependencies; deprecation notes from the help texts in "
                       "sglang/srt/arg_groups/fields/*.py and sglang/srt/server_args.py; env from sglang/srt/environ.py")
    table["command"] = f"python scripts/dump_runtime_flags.py sglang {whl} --python <python with sglang {live['version']}>"
    return table


# ------------------------------------------------------------------ main

READERS = {"llama-server": llama_server, "vllm": vllm, "sglang": sglang, "mlx-lm": mlx_lm,
           "ollama": ollama, "lm-studio": lm_studio, "transformers": transformers}


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line, so each option is a few readable lines."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=all(not isinstance(x, (dict, list)) for x in v) and len(v) < 40))


def write(table: dict, out: Path) -> Path:
    """Write one table; same input, byte-identical file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{table['runtime']}-{table['version']}.yaml"
    head = (f"# Option table of {table['runtime']} {table['version']}, written by scripts/dump_runtime_flags.py;\n"
            f"# rerun the command below instead of editing by hand.\n")
    body = {"schema": "plan-deploy/runtime-flags/v1", **table}
    text = head + yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("runtime", choices=sorted(READERS))
    p.add_argument("source", help="sdist, wheel or git directory (see above)")
    p.add_argument("--commit", default="HEAD", help="git revision to read (git sources)")
    p.add_argument("--python", help="(vllm, sglang) an interpreter where that runtime is installed: read its "
                                     "own parser instead of its source")
    p.add_argument("--repo", help="owner/name of a git source when its clone has no github remote")
    p.add_argument("--out", default=str(ROOT / "data" / "runtime_flags"), help="output directory")
    a = p.parse_args(argv)
    global REPO
    REPO = a.repo
    reader = READERS[a.runtime]
    source = Source(a.source, a.commit)
    table = reader(source, a.python) if a.runtime in ("vllm", "sglang") else reader(source)
    path = write(table, Path(a.out))
    n = sum(len(prog["options"]) for prog in table["programs"].values())
    print(f"{path.name}: {n} options, {len(table['env'])} environment variables", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
