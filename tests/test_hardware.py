"""Machine files: round trips, clear errors, atomic saves; hypothetical machines from flags."""

from __future__ import annotations

import json
import os

import pytest

from planner import catalog, hardware
from planner.errors import MachineFileError, UsageError
from planner.probe import probe

from .fakes import GIB, recorded_env


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def test_machine_document_round_trips_through_yaml_and_json(tmp_path):
    m = probe(recorded_env("nvidia-h100-80gb-hbm3"))
    for fmt, name in (("yaml", "m.yaml"), ("json", "m.json")):
        p = tmp_path / name
        hardware.write_atomic(p, hardware.dump_machine(m, fmt))
        back = hardware.load_machine(p)
        assert back.to_dict() == m.to_dict()


def test_hand_written_file_may_leave_out_optional_fields(tmp_path):
    p = tmp_path / "box.yaml"
    p.write_text("""
os: {system: Linux}
cpu: {model: Ryzen 9 7950X, arch: amd64, physical_cores: 16, logical_cores: 32}
memory: {total_bytes: 68719476736}
gpus:
  - {vendor: nvidia, name: NVIDIA GeForce RTX 4090, memory_total_bytes: 25757220864}
""")
    m = hardware.load_machine(p)
    assert m.cpu.arch == "x86_64" and m.cpu.usable_cores == 32
    assert m.memory.available_bytes == 64 * GIB
    assert m.gpus[0].index == 0 and m.gpus[0].memory_bandwidth_bytes_per_s is None
    assert any("idle" in n for n in m.notes)


@pytest.mark.parametrize("text,field", [
    ("os: {system: Linux}\ncpu: {model: x, arch: x86_64, physical_cores: 1, logical_cores: 1}\n", "memory"),
    ("os: {system: Linux}\ncpu: {model: x, arch: x86_64, physical_cores: 1}\nmemory: {total_bytes: 1}\n",
     "cpu.logical_cores"),
    ("os: {system: Linux}\ncpu: {model: x, arch: x86_64, physical_cores: 1, logical_cores: 1}\n"
     "memory: {total_bytes: -5}\n", "memory.total_bytes"),
    ("os: {system: Linux}\ncpu: {model: x, arch: x86_64, physical_cores: 1, logical_cores: 1}\n"
     "memory: {total_bytes: 1}\ngpus: [{vendor: nvidia, name: x}]\n", "gpus[0].memory_total_bytes"),
    ("os: {system: Linux}\ncpu: {model: x, arch: x86_64, physical_cores: 1, logical_cores: 1}\n"
     "memory: {total_bytes: 1}\ngpus: [{vendor: matrox, name: x, memory_total_bytes: 1}]\n", "gpus[0].vendor"),
    ("os: {system: Linux}\ncpu: {model: x, arch: x86_64, physical_cores: 1, logical_cores: 1}\n"
     "memory: {total_bytes: lots}\n", "memory.total_bytes"),
])
def test_invalid_file_names_the_file_and_field(tmp_path, text, field):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(MachineFileError) as e:
        hardware.load_machine(p)
    assert str(p) in e.value.message and f"'{field}'" in e.value.message


def test_malformed_yaml_and_missing_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("os: {system: Linux\ncpu: [")
    with pytest.raises(MachineFileError, match="not valid YAML or JSON"):
        hardware.load_machine(p)
    with pytest.raises(MachineFileError, match="not found"):
        hardware.load_machine(tmp_path / "nope.yaml")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    p = tmp_path / "m.json"
    p.write_text('{"old": true}')

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(MachineFileError, match="No space left"):
        hardware.write_atomic(p, "{}")
    assert json.loads(p.read_text()) == {"old": True}
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]  # no temporary file left behind


@pytest.mark.parametrize("text,expected", [
    ("RTX 4090", ("RTX 4090", 1)), ("h100-sxm x8", ("h100-sxm", 8)), ("rtx-4090x2", ("rtx-4090", 2)),
    ("a100-80*4", ("a100-80", 4)), ("mi300x", ("mi300x", 1)), ("H100 x 2", ("H100", 2)),
])
def test_gpu_argument_parsing(text, expected):
    assert hardware.parse_gpu_arg(text) == expected


def test_hypothetical_gpus_resolve_loosely(cat):
    m = hardware.hypothetical(cat, gpu="RTX 4090", vram=None, ram=64 * GIB, cpu_cores=None)
    (g,) = m.gpus
    assert g.catalog_id == "rtx-4090" and g.compute_capability == "8.9"
    assert g.memory_bandwidth_bytes_per_s == 1008 * 10**9
    assert 23 * GIB < g.memory_total_bytes < 24 * GIB  # shows a little less than the label
    m8 = hardware.hypothetical(cat, gpu="h100-sxm x8", vram=None, ram=None, cpu_cores=None)
    assert len(m8.gpus) == 8 and m8.os.system == "Linux"
    mac = hardware.hypothetical(cat, gpu="m3-max-128", vram=None, ram=None, cpu_cores=None)
    assert mac.os.system == "Darwin" and mac.gpus[0].unified_memory
    assert mac.gpus[0].memory_total_bytes == 128 * GIB == mac.memory.total_bytes


def test_unknown_gpu_lists_close_names(cat):
    with pytest.raises(UsageError) as e:
        hardware.hypothetical(cat, gpu="RTX 4095", vram=None, ram=None, cpu_cores=None)
    assert "RTX 4095" in e.value.message and "RTX 4090" in e.value.hint


def test_enrich_matches_probed_names_and_fills_gaps(cat):
    m = probe(recorded_env("nvidia-h100-80gb-hbm3"))
    e = hardware.enrich(m, cat)
    assert e.gpus[0].catalog_id == "h100-sxm"
    # the probed bandwidth is kept, not replaced by the sheet's
    assert e.gpus[0].memory_bandwidth_bytes_per_s == m.gpus[0].memory_bandwidth_bytes_per_s
    assert e.gpus[0].bf16_tflops is not None
