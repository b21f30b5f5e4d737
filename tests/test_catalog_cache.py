"""The compiled catalog: reused when fresh, rebuilt when stale, corrupt or from another version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from planner import catalog, catalog_cache


@pytest.fixture()
def data(tmp_path, monkeypatch):
    """A private copy of the data files and an empty cache directory."""
    d = tmp_path / "data"
    shutil.copytree(catalog.data_dir(), d)
    cache = tmp_path / "cache"
    monkeypatch.setenv("PLAN_DEPLOY_CACHE_DIR", str(cache))
    monkeypatch.delenv("PLAN_DEPLOY_NO_CACHE", raising=False)
    return d, cache


def _load(d: Path, build=catalog._build):
    return catalog_cache.load(d, build, catalog.Catalog, warm=catalog._warm)


def _files(cache: Path) -> list[Path]:
    return sorted(cache.iterdir()) if cache.exists() else []


def test_built_once_then_read(data):
    d, cache = data
    first = _load(d)
    (path,) = _files(cache)  # one file, no temporary left behind
    assert path.name.startswith("catalog-") and path.suffix == ".pickle"
    assert first.memo["weights"]  # the weight table travels with the compiled catalog

    def fail(_):
        raise AssertionError("rebuilt although fresh")

    again = _load(d, build=fail)
    assert again == first and again.memo["weights"].keys() == first.memo["weights"].keys()


def test_an_edited_data_file_is_never_read_from_a_stale_cache(data):
    d, cache = data
    _load(d)
    old = _files(cache)
    path = d / "models.yaml"
    path.write_text(path.read_text().replace("name: Llama 3.1 8B Instruct", "name: Llama 3.1 8B (edited)", 1))
    cat = _load(d)
    assert cat.model("llama-3.1-8b").name == "Llama 3.1 8B (edited)"
    assert _files(cache) != old and len(_files(cache)) == 1  # replaced, not piled up


def test_another_package_version_is_not_trusted(data, monkeypatch):
    d, cache = data
    _load(d)
    monkeypatch.setattr(catalog_cache, "__version__", "99.0")
    built = []
    _load(d, build=lambda p: built.append(p) or catalog._build(p))
    assert built


@pytest.mark.parametrize("garbage", [b"", b"not a pickle", b"\x80\x05K\x01."])
def test_a_corrupt_cache_file_is_rebuilt(data, garbage):
    d, cache = data
    _load(d)
    (path,) = _files(cache)
    path.write_bytes(garbage)
    cat = _load(d)
    assert cat.model("llama-3.1-8b").id == "llama-3.1-8b"
    assert path.read_bytes() != garbage


def test_disabled_by_the_environment(data, monkeypatch):
    d, cache = data
    monkeypatch.setenv("PLAN_DEPLOY_NO_CACHE", "1")
    assert _load(d).models
    assert not _files(cache)


def test_an_unwritable_cache_costs_only_speed(data, monkeypatch, tmp_path):
    d, _ = data
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("PLAN_DEPLOY_CACHE_DIR", str(blocker / "sub"))
    assert _load(d).models


def test_the_key_covers_every_data_file(data):
    d, _ = data
    before = catalog_cache.key(d)
    for name in catalog_cache.DATA_FILES:
        path = d / name
        text = path.read_text()
        path.write_text(text + "\n# touched\n")
        assert catalog_cache.key(d) != before, name
        path.write_text(text)
    assert catalog_cache.key(d) == before


def test_the_key_covers_the_code_that_builds_the_catalog(data, monkeypatch, tmp_path):
    d, _ = data
    before = catalog_cache.key(d)
    fake = tmp_path / "pkg"
    fake.mkdir()
    for name in catalog_cache.CODE_FILES:
        (fake / name).write_text("# another version of this module\n")
    monkeypatch.setattr(catalog_cache, "__file__", str(fake / "catalog_cache.py"))
    assert catalog_cache.key(d) != before
