"""Probe additions for fleets: NVLink state and P2P through NVML, InfiniBand ports and NIC speeds from sysfs.

Readings are built in the shapes NVML and the kernel use: nvmlDeviceGetNvLinkState per link
(NVML_FEATURE_ENABLED = 1), nvmlDeviceGetP2PStatus (NVML_P2P_STATUS_OK = 0), and the files
/sys/class/infiniband/DEV/ports/N/{state,rate,link_layer} ("4: ACTIVE", "400 Gb/sec (4X NDR)",
"InfiniBand") and /sys/class/net/IF/speed (Mb/s, -1 when the link is down).
"""

from __future__ import annotations

import json
from pathlib import Path

import pynvml

from planner.hardware import dump_machine, machine_from_dict
from planner.probe import probe
from tests.fakes import RTX_4090, FakeNvml, FakePsutil, NVMLError, device, fake_env, recorded_env

GIB = 1 << 30
H100 = dict(total=85520809984, bus=5120, mem_clock=2619, cc=(9, 0), reserved=503316480)


class NvlinkNvml(FakeNvml):
    """FakeNvml plus the NVLink calls: `links` active links per device, P2P per pair."""

    NVML_NVLINK_MAX_LINKS = pynvml.NVML_NVLINK_MAX_LINKS
    NVML_FEATURE_ENABLED = pynvml.NVML_FEATURE_ENABLED
    NVML_P2P_CAPS_INDEX_NVLINK = pynvml.NVML_P2P_CAPS_INDEX_NVLINK
    NVML_P2P_STATUS_OK = pynvml.NVML_P2P_STATUS_OK

    def __init__(self, devices, links: list[int] | None, p2p_ok: bool = True, **kw):
        super().__init__(devices, **kw)
        self.links = links
        self.p2p_ok = p2p_ok

    def nvmlDeviceGetNvLinkState(self, h, link):
        if self.links is None:  # a PCIe card: NVML answers Not Supported
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if link >= 18:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return pynvml.NVML_FEATURE_ENABLED if link < self.links[self.devices.index(h)] else 0

    def nvmlDeviceGetP2PStatus(self, a, b, index):
        assert index == pynvml.NVML_P2P_CAPS_INDEX_NVLINK
        ok = self.p2p_ok and self.links is not None
        return pynvml.NVML_P2P_STATUS_OK if ok else pynvml.NVML_P2P_STATUS_NOT_SUPPORTED


def _env(nvml, files=None, dirs=None):
    return fake_env(nvml=nvml, files={"/proc/driver/nvidia/version": "NVRM", **(files or {})}, dirs=dirs,
                    psutil=FakePsutil(32, 16, 64 * GIB, 60 * GIB))


READINGS = json.loads((Path(__file__).resolve().parent / "fixtures" / "fleet-links" / "readings.json").read_text())
IB_FILES, IB_DIRS = READINGS["sysfs_files"], READINGS["sysfs_dirs"]


def test_eight_h100_sxm_with_nvlink_and_infiniband():
    links = READINGS["nvml"]["nvlink_active_links_per_gpu"]
    nvml = NvlinkNvml([device("NVIDIA H100 80GB HBM3", **H100) for _ in links], links=links)
    m = probe(_env(nvml, IB_FILES, IB_DIRS))
    assert len(m.gpus) == 8
    assert m.links.nvlink_links == (18,) * 8 and m.links.nvlink_p2p is True
    assert m.links.infiniband == (
        {"device": "mlx5_0", "port": 1, "state": "ACTIVE", "rate_gbps": 400.0, "link_layer": "InfiniBand"},
        {"device": "mlx5_1", "port": 1, "state": "DOWN", "rate_gbps": 100.0, "link_layer": "Ethernet"},
    )
    assert m.links.nics == ({"name": "eth0", "speed_mbps": 100000},)  # down, virtual and loopback left out
    assert nvml.shutdown


def test_pcie_cards_have_no_nvlink_and_that_is_not_a_note():
    nvml = NvlinkNvml([device("NVIDIA GeForce RTX 4090", **RTX_4090) for _ in range(2)], links=None)
    m = probe(_env(nvml))
    assert m.links.nvlink_links == (0, 0) and m.links.nvlink_p2p is False
    assert not any("NVLink" in n or "NvLink" in n for n in m.notes)


def test_p2p_refused_between_some_gpus():
    nvml = NvlinkNvml([device("NVIDIA H100 80GB HBM3", **H100) for _ in range(2)], links=[18, 18], p2p_ok=False)
    assert probe(_env(nvml)).links.nvlink_p2p is False


def test_older_pynvml_without_nvlink_calls_still_probes():
    m = probe(recorded_env("nvidia-h100-80gb-hbm3"))  # FakeNvml has no NVLink calls at all
    assert len(m.gpus) == 1
    assert m.links is not None and m.links.nvlink_links == (0,)


def test_no_gpu_no_network_readings_leaves_links_out():
    m = probe(fake_env(psutil=FakePsutil(2, 2, 8 * GIB, 8 * GIB)))
    assert m.links is None
    assert "links" not in m.to_dict()


def test_links_round_trip_through_a_machine_file():
    nvml = NvlinkNvml([device("NVIDIA H100 80GB HBM3", **H100) for _ in range(8)], links=[18] * 8)
    m = probe(_env(nvml, IB_FILES, IB_DIRS))
    import yaml

    again = machine_from_dict(yaml.safe_load(dump_machine(m, "yaml")))
    assert again.links == m.links
    assert machine_from_dict(yaml.safe_load(dump_machine(m, "json"))).links == m.links


def test_bad_links_field_is_named():
    import pytest

    from planner.errors import MachineFileError

    doc = {"os": {"system": "Linux"}, "cpu": {"model": "x", "arch": "x86_64", "physical_cores": 1,
                                               "logical_cores": 1}, "memory": {"total_bytes": GIB},
           "links": {"nvlink_links": ["many"]}}
    with pytest.raises(MachineFileError, match="links.nvlink_links"):
        machine_from_dict(doc)
