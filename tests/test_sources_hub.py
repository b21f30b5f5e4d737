"""The Hugging Face hub path online, against a local server that answers as the hub's file
endpoints document (HEAD with X-Repo-Commit/ETag, GET with Range, 404 + X-Error-Code): the real
huggingface_hub client, its cache and the real CLI, with no network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from werkzeug import Request, Response

from planner.catalog import load
from tests.checkpoint_fixtures import config_for, write_checkpoint

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub(files: dict[str, bytes], seen: list[str]):
    def handler(request: Request) -> Response:
        m = re.fullmatch(r"/acme/online-chat/resolve/[^/]+/(.+)", request.path)
        name = m.group(1) if m else None
        seen.append(f"{request.method} {name} {request.headers.get('Range', '')}".strip())
        if name not in files:
            return Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        body = files[name]
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{abs(hash(body))}"', "Accept-Ranges": "bytes"}
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
        if request.method == "HEAD":
            return Response(status=200, headers={**headers, "Content-Length": str(len(body))})
        if rng:
            start, end = int(rng.group(1)), int(rng.group(2) or len(body) - 1)
            part = body[start:end + 1]
            return Response(part, status=206, headers={**headers, "Content-Range": f"bytes {start}-{end}/{len(body)}"})
        return Response(body, status=200, headers=headers)
    return handler


def test_repo_id_online_reads_config_card_and_safetensors_header(httpserver, tmp_path):
    m = load().model("qwen2.5-0.5b")
    ckpt = tmp_path / "ckpt"
    expected = write_checkpoint(ckpt, m.arch, "qwen2", 32768)
    with open(ckpt / "model.safetensors", "rb") as f:
        head = f.read(200_000)  # the header and the start of the (sparse) data: all a range read needs
    files = {"config.json": (ckpt / "config.json").read_bytes(),
             "README.md": b"---\nlicense: apache-2.0\n---\n# Online chat\n",
             "model.safetensors": head}
    seen: list[str] = []
    httpserver.expect_request(re.compile(".*")).respond_with_handler(_hub(files, seen))
    env = {**os.environ, "HF_ENDPOINT": httpserver.url_for("").rstrip("/"), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    code = "import sys; from planner.cli import main; main(sys.argv[1:])"
    p = subprocess.run([sys.executable, "-c", code, "estimate", "acme/online-chat", "--runtime", "vllm",
                        "--context", "4096", "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["weights_bytes"] == expected and doc["weights_source"] == "artifact" and doc["quant"] == "BF16"
    assert "same architecture as catalog model qwen2.5-0.5b" in p.stderr
    assert any(s.startswith("GET model.safetensors bytes=0-") for s in seen), seen
    assert not any(s.startswith("GET model.safetensors") and "bytes" not in s for s in seen)  # never the weights
    # the config and card are now in huggingface_hub's own cache: offline, the same repo still resolves
    p = subprocess.run([sys.executable, "-c", code, "estimate", "acme/online-chat", "--runtime", "vllm",
                        "--quant", "BF16", "--context", "4096", "--format", "json"], cwd=ROOT,
                       env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["model"] == "acme/online-chat"
    cached = list((tmp_path / "hf" / "hub").rglob("config.json"))
    assert cached and json.loads(cached[0].read_text()) == config_for(m.arch, "qwen2", 32768)


def test_repo_id_that_the_hub_does_not_have(httpserver, tmp_path):
    httpserver.expect_request(re.compile(".*")).respond_with_data(
        "", status=401, headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
    env = {**os.environ, "HF_ENDPOINT": httpserver.url_for("").rstrip("/"), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "0"}
    code = "import sys; from planner.cli import main; main(sys.argv[1:])"
    p = subprocess.run([sys.executable, "-c", code, "can-run", "acme/nothing-here", "--gpu", "RTX 4090"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert lines[0] == "Error: no model 'acme/nothing-here' in the catalog or on the Hugging Face Hub", p.stderr
    assert lines[1].startswith("Hint: ") and len(lines) == 2
