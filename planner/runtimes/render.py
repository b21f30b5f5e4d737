"""The last step of every launch: steps (argv + env, or OS actions) rendered as one line for the
user's shell.

POSIX shells (Linux, macOS): `VAR=value cmd`, a background server `cmd &`, steps joined by `&&`.
PowerShell (Windows): `$env:VAR = 'value'`, a background server `Start-Process -NoNewWindow`,
steps joined by `;` (Windows PowerShell 5.1 has no `&&`). Quoting: shlex for POSIX; PowerShell
single quotes (a quote inside doubled), per about_Quoting_Rules.

OS actions: ("write", file, content); ("setenv", name, value) for a desktop app's environment
(macOS `launchctl setenv`, Windows `setx`: the ways Ollama's FAQ names); ("restart-app", name)
(macOS `osascript -e 'quit app "X"'` then `open -a X`; on Windows the app is restarted by hand).
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Iterable

from .base import Launch, LaunchRequest, Step

if TYPE_CHECKING:
    from .base import Runtime

_PS_BARE = re.compile(r"^[A-Za-z0-9_./:=+-]+$")


def shell_for(system: str) -> str:
    """posix | powershell for an OS name as the machine schema spells it."""
    return "powershell" if system == "Windows" else "posix"


def ps_quote(arg: str) -> str:
    """One PowerShell argument: bare when it holds only safe characters, else single-quoted."""
    if arg and _PS_BARE.match(arg):
        return arg
    return "'" + arg.replace("'", "''") + "'"


def _action_argvs(action: tuple[str, ...], shell: str) -> list[tuple[str, ...]]:
    kind = action[0]
    if kind == "setenv":
        return [("setx", action[1], action[2])] if shell == "powershell" else [("launchctl", "setenv", action[1],
                                                                                 action[2])]
    if kind == "restart-app" and shell == "posix":
        # `open` returns before the app's server listens: wait as the Linux `ollama serve &` does
        return [("osascript", "-e", f'quit app "{action[1]}"'), ("open", "-a", action[1]), ("sleep", "2")]
    if kind == "restart-app":
        return []
    raise ValueError(f"unknown launch action {kind!r}")


def _posix(step: Step) -> str:
    if step.action and step.action[0] == "write":
        return f"printf '%s\\n' {shlex.quote(step.action[2])} > {shlex.quote(step.action[1])}"
    if step.action:
        return " && ".join(shlex.join(a) for a in _action_argvs(step.action, "posix"))
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(step.env.items())]
    return " ".join(env + [shlex.join(step.argv)])


def _powershell(step: Step) -> str:
    if step.action and step.action[0] == "write":
        return f"Set-Content -Path {ps_quote(step.action[1])} -Value {ps_quote(step.action[2])}"
    if step.action:
        return "; ".join(" ".join(ps_quote(x) for x in a) for a in _action_argvs(step.action, "powershell"))
    env = [f"$env:{k} = {ps_quote(v)}" for k, v in sorted(step.env.items())]
    if step.background:
        args = " ".join(ps_quote(a) for a in step.argv[1:])
        cmd = f"Start-Process -NoNewWindow -FilePath {ps_quote(step.argv[0])}"
        if args:
            cmd += f" -ArgumentList {ps_quote(args)}"
        return "; ".join(env + [cmd, "Start-Sleep -Seconds 2"])
    return "; ".join(env + [" ".join(ps_quote(a) for a in step.argv)])


def render(steps: Iterable[Step], shell: str) -> str:
    """All steps as one line for `shell` (posix | powershell)."""
    if shell == "powershell":
        return "; ".join(t for t in (_powershell(s) for s in steps) if t)
    parts = [(s, _posix(s)) for s in steps]
    parts = [(s, t) for s, t in parts if t]
    out = ""
    for i, (s, text) in enumerate(parts):
        last = i + 1 == len(parts)
        if s.background and not last:
            out += f"{text} & sleep 2 && "
        else:
            out += text + ("" if last else " && ")
    return out


def finish(runtime: "Runtime", req: LaunchRequest, steps: list[Step], notes: Iterable[str] = ()) -> Launch:
    """The Launch record: main command = the server step (else the last runtime step), rendered
    for the machine's shell."""
    shell = shell_for(req.machine.os.system)
    runnable = [s for s in steps if s.argv]
    main = next((s for s in runnable if s.role == "server"), runnable[-1])
    return Launch(command=render(steps, shell), argv=main.argv, env=dict(main.env),
                  port=runtime.spec.default_port, notes=tuple(notes) + runtime.pin_notes(req), steps=tuple(steps),
                  shell=shell, runtime_version=runtime.version)
