"""Hugging Face Transformers: a Python snippet (no server), BF16/F16 safetensors, accelerate's
device_map offload.

- The whole prompt is prefilled at once: activations grow with the context (memory term).
- Transformers 5: `apply_chat_template` returns a BatchEncoding (a dict) by default: the snippet
  asks for the dict explicitly (return_dict=True, which 4.x accepts too) and passes it to generate.
"""

from __future__ import annotations

from ..catalog import Catalog, ModelSpec
from .base import Launch, LaunchRequest, Options, Runtime, Step
from .render import finish

SNIPPET = ("import torch; from transformers import AutoModelForCausalLM, AutoTokenizer; m={repo!r}; "
           "tok = AutoTokenizer.from_pretrained(m); "
           "model = AutoModelForCausalLM.from_pretrained(m, dtype=torch.bfloat16, device_map={device!r}); "
           "inputs = tok.apply_chat_template([{{'role': 'user', 'content': 'Hello'}}], add_generation_prompt=True, "
           "return_dict=True, return_tensors='pt').to(model.device); "
           "out = model.generate(**inputs, max_new_tokens=128); "
           "print(tok.decode(out[0][inputs['input_ids'].shape[1]:], skip_special_tokens=True))")


class Transformers(Runtime):
    id = "transformers"

    def overhead_bytes(self, model: ModelSpec, catalog: Catalog, context: int, batch: int, gpu: bool,
                       options: Options, devices: tuple = ()) -> int:
        from ..memory import activation_bytes_per_token

        total = super().overhead_bytes(model, catalog, context, batch, gpu, options, devices)
        return total + activation_bytes_per_token(model.arch, catalog.constants) * context * batch

    def launch(self, req: LaunchRequest) -> Launch:
        device = "cpu" if req.placement.kind == "cpu" else "auto"
        repo = getattr(req.artifact, "path", None) or req.artifact.repo
        values = self.base_values(req)
        values.update(transformers_snippet=SNIPPET.format(repo=repo, device=device), kv_cache_type=None)
        argv, env = self.fill(values)
        env.update(self.pin_env(req))
        return finish(self, req, [Step("client", tuple(argv), env)])


RUNTIME = Transformers
