"""Ollama: GGUF models by library tag; settings are server environment variables.

Rules (facts in data/runtimes.yaml `ollama`):
- The context and KV type are read by the server (OLLAMA_CONTEXT_LENGTH, OLLAMA_KV_CACHE_TYPE),
  so they go where the server starts. On Linux the plan starts `ollama serve` with them; on
  macOS and Windows the Ollama app already runs the server: the plan sets the variables for the
  app (macOS `launchctl setenv`, Windows `setx`, per Ollama's FAQ) and asks for a restart of the
  app, never a second `ollama serve`.
- A local or converted GGUF becomes a model with a Modelfile `FROM <path>` and `ollama create`.
- No RoPE/YaRN setting is exposed: contexts beyond the native window are refused.
"""

from __future__ import annotations

from .base import Launch, LaunchRequest, Runtime, Step
from .llama_cpp import model_source
from .render import finish


class Ollama(Runtime):
    id = "ollama"

    def launch(self, req: LaunchRequest) -> Launch:
        values = self.base_values(req)
        steps: list[Step] = []
        if model_source(req) in ("local", "convert"):
            name = req.model.id.replace(".", "-").lower()
            path = getattr(req.artifact, "path", None) or req.artifact.file
            steps.append(Step("prepare", action=("write", "Modelfile", f"FROM {path}")))
            steps.append(Step("prepare", ("ollama", "create", name, "-f", "Modelfile")))
            values["ollama_tag"] = name
        else:
            values["ollama_tag"] = req.artifact.tag
        argv, env = self.fill(values)
        env.update(self.pin_env(req))
        system = req.machine.os.system
        notes = []
        if system == "Linux":
            server = Step("server", tuple(self.spec.launch.get("server", ["ollama", "serve"])), env, background=True)
            notes.append("if Ollama runs as a systemd service, set " + ", ".join(f"{k}={v}" for k, v in sorted(env.items()))
                         + " with `systemctl edit ollama.service` (Environment=) and restart it instead of "
                           "starting `ollama serve`")
            steps = [server] + steps
        else:
            steps = [Step("prepare", action=("setenv", k, v)) for k, v in sorted(env.items())] + steps
            if system == "Darwin":
                # The app reads its environment when it starts: quit and reopen it.
                steps.append(Step("prepare", action=("restart-app", "Ollama")))
                notes.append("the Ollama app runs the server: the command sets its environment with launchctl "
                             "and restarts the app; no `ollama serve`")
            else:
                notes.append("the Ollama app runs the server: setx stores the settings for your account; quit "
                             "Ollama from the taskbar and start it again before `ollama run`; no `ollama serve`")
        if req.estimate.batch > 1:
            # A server for many users: fetch the model (a created one is already there); it loads
            # on the first API request with the server's settings (no interactive `ollama run`).
            notes.append("the model loads on the first request to http://127.0.0.1:11434 (OpenAI-compatible at /v1)")
            if model_source(req) not in ("local", "convert"):
                steps.append(Step("prepare", tuple("pull" if a == "run" else a for a in argv)))
        else:
            steps.append(Step("client", tuple(argv)))
        return finish(self, req, steps, notes)


RUNTIME = Ollama
