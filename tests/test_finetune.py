"""Fine-tune planning (planner/finetune.py, `plan-deploy finetune`) against published figures.

Sources of the figures (recorded with their sources in data/finetune.yaml, `published:`):
- LoRA parameter counts: the trainer banner of Unsloth's notebooks, unslothai/notebooks @bdda2efc, e.g.
  nb/Llama3.1_(8B)-Alpaca.ipynb prints "Number of trainable parameters = 41,943,040" for r=16 on
  q,k,v,o,gate,up,down (the count PEFT's print_trainable_parameters gives for the same adapter).
- Unsloth's README @000252c9, "Context length benchmarks" (Llama-3.1-8B and Llama-3.3-70B, r=32, batch 1).
- Unsloth's requirements page, "Fine-tuning VRAM requirements" (minimum VRAM, QLoRA and 16-bit LoRA).
Refit and print the whole error table with `python scripts/fit_finetune.py`.
"""

from __future__ import annotations

import json
import statistics

import pytest
from click.testing import CliRunner

from planner import catalog
from planner import finetune as ft
from planner.cli import cli

GIB = 1 << 30


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


@pytest.fixture(scope="module")
def consts():
    return ft.load_constants()


def _mem(cat, consts, model, **kw):
    return ft.estimate(cat.model(model), ft.Request(**kw), consts, cat)


def _run(*args):
    return CliRunner().invoke(cli, ["finetune", *args])


def _main(*args: str) -> tuple[int, str, str]:
    """The installed entry point (error translation, exit codes), as tests/test_cli.py runs it."""
    from planner.cli import main

    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(["finetune", *args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        return code, out.getvalue().decode(), err.getvalue().decode()


# ---------------------------------------------------------------- LoRA parameter counts


def test_llama_3_1_8b_r16_all_linear_is_41943040(cat):
    # unslothai/notebooks nb/Llama3.1_(8B)-Alpaca.ipynb: "Number of trainable parameters = 41,943,040"
    assert ft.lora_params(cat.model("llama-3.1-8b").arch, 16, "all-linear") == 41_943_040


def test_notebook_trainable_counts_are_exact(cat, consts):
    # Every Unsloth notebook row in data/finetune.yaml: r=16 on q,k,v,o,gate,up,down, counted as Unsloth loads
    # the model (Phi-3-style fused projections split).
    for row in consts["published"]["unsloth_notebooks"]["rows"]:
        arch = cat.model(row["model"]).arch
        assert ft.lora_params(arch, row["rank"], "all-linear", unfuse=True) == row["trainable"], row["notebook"]


def test_fused_projections_count_once_without_unfusing(cat):
    # Hugging Face Phi-3: one qkv_proj (3072 -> 9216) and one gate_up_proj (3072 -> 16384) per layer.
    arch = cat.model("phi-3.5-mini").arch
    assert ft.lora_params(arch, 16) == 16 * 32 * ((3072 + 9216) + (3072 + 3072) + (3072 + 16384) + (8192 + 3072))
    assert ft.lora_params(arch, 16, unfuse=True) == 29_884_416


def test_attention_target_uses_gqa_widths(cat):
    # q 4096->4096, k and v 4096->1024 (8 KV heads x 128), o 4096->4096, 32 layers
    assert ft.lora_params(cat.model("llama-3.1-8b").arch, 8, "attention") == 8 * 32 * (8192 + 5120 + 5120 + 8192)


def test_moe_experts_are_adapted_under_all_linear(cat):
    arch = cat.model("mixtral-8x7b").arch
    dense_equiv = ft.lora_params(arch, 8, "attention")
    assert ft.lora_params(arch, 8) - dense_equiv == 8 * 32 * 8 * 3 * (4096 + 14336)


# ---------------------------------------------------------------- memory terms


def test_nf4_bits_are_double_quantized_blocks_of_64(consts):
    assert consts["nf4"]["bits_per_weight"] == pytest.approx(4 + 8 / 64 + 32 / (64 * 256), abs=5e-4)


def test_qlora_base_keeps_embeddings_and_head_in_16_bits(cat, consts):
    terms = ft.base_weight_bytes(cat.model("llama-3.1-8b").arch, "qlora", consts)
    assert terms["base_embed_head_16bit"] == 2 * 128256 * 4096 * 2 + (32 * 2 + 1) * 4096 * 2
    assert terms["base_linear_4bit"] == round(6_979_321_856 * 4.127 / 8)


def test_loaded_memory_matches_unsloth_notebooks(cat, consts):
    # Held out: torch's reserved memory after loading (base + adapters), every notebook row. Stated error:
    # we predict 2-17% low (median 8%); the same Llama-3 8B shapes load 5.594 GiB under Unsloth 2024.5 and
    # 5.984 GiB under 2024.8, so versions alone move this figure by 7%.
    errs = []
    for row in consts["published"]["unsloth_notebooks"]["rows"]:
        mem = _mem(cat, consts, row["model"], rank=row["rank"])
        err = ft.loaded_bytes(mem) / GIB / row["loaded_gib"] - 1
        errs.append(abs(err))
        assert -0.18 < err < 0.02, (row["model"], err)
    assert statistics.median(errs) < 0.10


def test_longer_sequences_and_higher_ranks_never_need_less(cat, consts):
    for method in ft.METHODS:
        prev = 0
        for r in (8, 16, 32, 64):
            mem = _mem(cat, consts, "qwen2.5-7b", method=method, rank=r)
            assert mem.total_bytes(4096) >= mem.total_bytes(1024) > 0
            assert mem.fixed_bytes >= prev
            prev = mem.fixed_bytes


def test_full_finetune_prices_mixed_precision_adam(cat, consts):
    mem = _mem(cat, consts, "llama-3.2-1b", method="full", optimizer="adamw")
    n = mem.trainable_params
    # ZeRO paper: 2 (weights) + 2 (grads) + 12 (fp32 master + two moments) bytes per parameter
    assert mem.terms["base_16bit"] + mem.terms["gradients_16bit"] + mem.terms["master_weights_fp32"] \
        + mem.terms["optimizer_states"] == 16 * n


# ---------------------------------------------------------------- Unsloth's context table


def _context_rows(consts, model):
    return [r for r in consts["published"]["unsloth_context"]["rows"] if r["model"] == model]


def test_unsloth_8b_context_column_in_sample(cat, consts):
    # In-sample: the Unsloth and HF+FA2 columns fix each framework's slope and fixed workspace.
    for r in _context_rows(consts, "llama-3.1-8b"):
        for fw in ("unsloth", "transformers"):
            if r[fw]:
                mem = _mem(cat, consts, "llama-3.1-8b", rank=32, framework=fw)
                assert mem.max_tokens(r["vram_gb"] * GIB) == pytest.approx(r[fw], rel=0.01), (fw, r)


def test_unsloth_70b_context_held_out(cat, consts):
    # Held out: Llama-3.3-70B. Memory at the published length is within 3% of the GPU (48 GB: +2.3%); in tokens
    # the 48 GB row is the sensitive one (5 GiB left for activations): -21%; 80 GB: -5%; HF+FA2 80 GB: +9%.
    limits = {("unsloth", 48): 0.25, ("unsloth", 80): 0.10, ("transformers", 80): 0.15}
    for r in _context_rows(consts, "llama-3.3-70b"):
        for fw in ("unsloth", "transformers"):
            if not r[fw]:
                continue
            mem = _mem(cat, consts, "llama-3.3-70b", rank=32, framework=fw)
            label = r["vram_gb"] * GIB
            assert abs(mem.total_bytes(r[fw]) / label - 1) < 0.03
            assert abs(mem.max_tokens(label) / r[fw] - 1) < limits[(fw, r["vram_gb"])]


def test_unsloth_24gb_says_about_78k_tokens_and_hf_about_5_8k(cat, consts):
    u = _mem(cat, consts, "llama-3.1-8b", rank=32).max_tokens(24 * GIB)
    h = _mem(cat, consts, "llama-3.1-8b", rank=32, framework="transformers").max_tokens(24 * GIB)
    assert 70_000 < u < 86_000 and 5_200 < h < 6_400


# ---------------------------------------------------------------- Unsloth's minimum-VRAM table


def _minimum_errors(cat, consts, method, key):
    out = {}
    for r in consts["published"]["unsloth_min_vram"]["rows"]:
        mem = _mem(cat, consts, r["model"], method=method, rank=16)
        out[r["label"]] = ft.minimum_bytes(mem, consts) / GIB / r[key] - 1
    return out


def test_unsloth_minimum_qlora_column(cat, consts):
    # Held out. Stated error: median 8%, every row within 28% (3B -24%, 14B +27%, 27B/32B -19%: the published
    # column is not monotone in bytes per parameter, 0.61 at 14B and 0.81 at 27B); 8B +8%, 70B +2%.
    errs = _minimum_errors(cat, consts, "qlora", "qlora_gb")
    assert all(abs(e) < 0.28 for e in errs.values()), errs
    assert statistics.median(abs(e) for e in errs.values()) < 0.10
    assert abs(errs["8B"]) < 0.09 and abs(errs["70B"]) < 0.02


def test_unsloth_minimum_16bit_lora_column(cat, consts):
    # Held out. Stated error: we predict 14-30% below the published 16-bit column (median -20%): the page
    # states ~2.35 bytes per parameter for 27B-405B against 2 bytes of 16-bit weights plus adapters.
    errs = _minimum_errors(cat, consts, "lora", "lora16_gb")
    assert all(-0.31 < e < -0.10 for e in errs.values()), errs
    assert statistics.median(abs(e) for e in errs.values()) < 0.22


# ---------------------------------------------------------------- time


def test_flops_per_token_follow_the_method(cat, consts):
    m = cat.model("llama-3.1-8b")
    lora = ft.flops_per_token(m, "qlora", 1, consts)
    full = ft.flops_per_token(m, "full", 1, consts)
    n = m.params - 128256 * 4096
    assert lora == pytest.approx(6 * n, rel=1e-3) and full == pytest.approx(8 * n, rel=1e-3)
    assert ft.flops_per_token(m, "qlora", 4096, consts) > lora  # attention grows with the context


def test_epoch_time_scales_with_tokens_and_gpus(consts):
    one = ft.epoch_time(3_000_000, 5e10, 165.2e12, 1, consts)
    two = ft.epoch_time(3_000_000, 5e10, 165.2e12, 2, consts)
    assert one.seconds_low < one.seconds_expected < one.seconds_high
    assert two.seconds_expected == pytest.approx(one.seconds_expected / 2)
    assert one.seconds_expected == pytest.approx(3e6 * 5e10 / (165.2e12 * consts["mfu"]["expected"]))


# ---------------------------------------------------------------- serving the adapter


def test_vllm_max_lora_rank_rounds_up_to_allowed_values(consts):
    # vllm/config/lora.py: MaxLoRARanks = 1, 8, 16, 32, 64, 128, 256, 320, 512
    assert [ft.vllm_rank(r, consts) for r in (1, 2, 16, 17, 300, 512)] == [1, 8, 16, 32, 320, 512]
    with pytest.raises(ft.UsageError):
        ft.vllm_rank(513, consts)


def test_serve_commands_are_argv_lists(cat, consts):
    cmds = ft.commands(cat.model("llama-3.1-8b"), 32, "./lora-out", consts)
    assert cmds["vllm"][0] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--enable-lora",
                               "--lora-modules", "ft=./lora-out", "--max-lora-rank", "32"]
    assert cmds["llama.cpp"][0][:2] == ["python", "convert_lora_to_gguf.py"]
    assert "--lora" in cmds["llama.cpp"][1]
    assert cmds["ollama"]["modelfile"][1] == "ADAPTER ./lora-out"
    assert all(isinstance(x, str) for argv in cmds["vllm"] + cmds["llama.cpp"] for x in argv)


# ---------------------------------------------------------------- the command


def test_70b_qlora_on_a_4090_says_no_and_what_would():
    r = _run("llama-3.3-70b", "--method", "qlora", "--gpu", "RTX 4090")
    assert r.exit_code == 3, r.output
    assert "does NOT fit" in r.output
    assert "L40S (48 GB)" in r.output  # one 48 GB GPU
    assert "2 of these GPUs with FSDP / DeepSpeed ZeRO-3" in r.output  # FSDP + QLoRA: 70B on two 24 GB GPUs


def test_70b_on_two_4090s_fits_with_zero3_at_short_sequences():
    r = _run("llama-3.3-70b", "--gpu", "RTX 4090 x2", "--seq-len", "512", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["fits"] and not doc["single_gpu"]["fits"]
    fits = {p["strategy"]: p["fits"] for p in doc["multi_gpu"]}
    assert fits == {"ddp": False, "zero2": False, "zero3": True}


def test_8b_on_a_4090_fits_with_time_and_follow_up():
    r = _run("llama-3.1-8b", "--gpu", "RTX 4090", "--examples", "5000", "--avg-tokens", "600", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["trainable_params"] == 41_943_040 and doc["fits"]
    assert 70_000 < doc["single_gpu"]["max_tokens"] < 90_000
    assert doc["time"]["tokens_per_epoch"] == 3_000_000 and doc["time"]["seconds_expected"] > 0
    assert doc["follow_up"]["merge"]["where"] == "gpu"
    assert doc["follow_up"]["serve_adapter"]["vllm"][0][-1] == "16"


def test_output_is_deterministic():
    args = ("qwen2.5-7b", "--gpu", "RTX 3090", "--format", "json")
    assert _run(*args).stdout == _run(*args).stdout


@pytest.mark.parametrize("args, words", [
    (("llama-3.1-8b", "--gpu", "RTX 4090", "--rank", "0"), "--rank"),
    (("llama-3.1-8b", "--gpu", "RTX 4090", "--rank", "4096"), "rank 4096 is outside 1..1024"),
    (("llama-3.1-8b", "--gpu", "RTX 4090", "--framework", "megatron"), "--framework"),
    (("llama-3.1-8b", "--gpu", "RTX 4090", "--method", "dora"), "--method"),
    (("llama-3.1-8b", "--gpu", "m3-max-128"), "QLoRA cannot train on Apple silicon"),
    (("llama-3.1-8b", "--gpu", "RTX 4090", "--examples", "100"), "--examples and --avg-tokens"),
])
def test_bad_input_is_one_error_and_one_hint(args, words):
    code, out, err = _main(*args)
    assert code == 2, (out, err)
    lines = [ln for ln in err.splitlines() if not ln.startswith("note:")]
    assert len(lines) == 2 and lines[0].startswith("Error:") and lines[1].startswith("Hint:"), lines
    assert words in lines[0]
    assert "Traceback" not in out + err and out == ""


def test_apple_hint_names_mlx_lm():
    code, _, err = _main("llama-3.1-8b", "--gpu", "m3-max-128")
    assert code == 2 and "mlx_lm.lora" in err


def test_cpu_only_machine_is_refused():
    from pathlib import Path

    box = Path(__file__).parent / "machines" / "cpu-box.yaml"
    code, _, err = _main("llama-3.2-1b", "--machine", str(box), "--method", "lora")
    assert code == 2 and "CUDA GPUs only" in err


def test_full_finetune_has_nothing_to_merge():
    r = _run("llama-3.2-1b", "--method", "full", "--optimizer", "adamw", "--gpu", "A100 80GB", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["rank"] is None
    assert doc["trainable_params"] == cat_params("llama-3.2-1b")
    assert "merge" not in doc["follow_up"] and "can-run llama-3.2-1b" in doc["follow_up"]["serve"]


def cat_params(model_id):
    return catalog.load().model(model_id).params


def test_finetune_imports_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, planner.cli, planner.finetune_cli, planner.finetune; "
            "heavy = {'numpy', 'httpx', 'gguf', 'huggingface_hub', 'xllamacpp', 'torch'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sharding_divides_only_what_each_stage_shards(cat, consts):
    mem = _mem(cat, consts, "llama-3.3-70b", rank=16)
    z2, z3 = ft.sharded(mem, 4, "zero2"), ft.sharded(mem, 4, "zero3")
    assert ft.sharded(mem, 4, "ddp") == mem
    assert z2.terms["base_linear_4bit"] == mem.terms["base_linear_4bit"]
    assert z2.terms["lora_gradients_fp32"] == mem.terms["lora_gradients_fp32"] // 4
    assert z3.terms["base_linear_4bit"] == -(-mem.terms["base_linear_4bit"] // 4)
    assert z3.terms["cuda_context"] == mem.terms["cuda_context"] and z3.per_token_bytes == mem.per_token_bytes


def test_table_output_shows_terms_shape_time_and_commands():
    r = _run("llama-3.1-8b", "--gpu", "RTX 4090", "--examples", "5000", "--avg-tokens", "600", "--rank", "32")
    assert r.exit_code == 0
    out = r.stdout
    for words in ("QLoRA of llama-3.1-8b with unsloth", "83,886,080 trainable", "base linear 4bit",
                  "largest on one GPU:", "time per epoch: 3,000,000 tokens", "merge: needs the 16-bit base",
                  "$ vllm serve meta-llama/Llama-3.1-8B-Instruct --enable-lora --lora-modules ft=./lora-out "
                  "--max-lora-rank 32", "--lora ft-lora.gguf", "ADAPTER ./lora-out"):
        assert words in out, words


def test_properties_more_memory_never_fewer_tokens_more_tokens_never_less_memory(cat, consts):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    models = [m.id for m in cat.models]

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(models), st.sampled_from(ft.METHODS), st.sampled_from(ft.FRAMEWORKS),
           st.integers(1, 8), st.integers(1, 200_000), st.integers(8, 200))
    def check(model, method, fw, rank, tokens, gib):
        mem = _mem(cat, consts, model, method=method, framework=fw, rank=rank)
        assert mem.total_bytes(tokens + 1) > mem.total_bytes(tokens)
        assert mem.max_tokens((gib + 8) * GIB) >= mem.max_tokens(gib * GIB)
        assert mem.total_bytes(mem.max_tokens(gib * GIB)) <= gib * GIB or mem.max_tokens(gib * GIB) == 0

    check()


def test_unsloth_offload_is_limited_by_cpu_ram():
    # Unsloth keeps one checkpoint per layer in CPU RAM: 32 x 4096 x 2 = 262,144 bytes per token for the 8B.
    wide = json.loads(_run("llama-3.1-8b", "--gpu", "RTX 4090", "--ram", "256G", "--format", "json").stdout)
    tight = json.loads(_run("llama-3.1-8b", "--gpu", "RTX 4090", "--ram", "8G", "--format", "json").stdout)
    assert wide["single_gpu"]["max_tokens"] > 75_000
    assert tight["single_gpu"]["max_tokens"] == tight["ram_budget_bytes"] // (32 * 4096 * 2)


def test_machine_files_work():
    from pathlib import Path

    box = Path(__file__).parent / "machines" / "gpu-24gb.yaml"
    r = _run("qwen2.5-7b", "--machine", str(box), "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["fits"]
