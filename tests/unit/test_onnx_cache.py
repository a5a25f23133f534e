"""The ONNX cache's folder: where it is, what names an entry, and whole-or-nothing builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedserve.server.onnx_cache import build_once, cache_root, entry_name, folder_fingerprint


def test_cache_root_is_the_setting_else_the_xdg_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cache_root(str(tmp_path / "mine")) == tmp_path / "mine"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root("") == tmp_path / "xdg" / "embedserve"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root("") == tmp_path / "home" / ".cache" / "embedserve"


def test_the_fingerprint_follows_the_model_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"1234")
    first = folder_fingerprint(model)
    assert folder_fingerprint(model) == first
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref")
    assert folder_fingerprint(model) == first  # hidden folders are not the model
    (model / "model.safetensors").write_bytes(b"12345")
    changed = folder_fingerprint(model)
    assert changed != first
    (model / "2_Dense").mkdir()
    (model / "2_Dense" / "config.json").write_text("{}")
    assert folder_fingerprint(model) != changed
    assert entry_name("m-onnx", [first, "opset 17"]) != entry_name("m-onnx", [first, "opset 18"])
    assert entry_name("m-onnx", [first]).startswith("m-onnx-")


def test_an_entry_is_built_once_and_whole(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "entry"
    calls: list[Path] = []

    def build(staging: Path) -> None:
        calls.append(staging)
        assert not entry.exists()  # written elsewhere, renamed into place at the end
        (staging / "model.onnx").write_text("graph")

    assert build_once(entry, build) is True
    assert build_once(entry, build) is False
    assert len(calls) == 1
    assert (entry / "model.onnx").read_text() == "graph"
    assert sorted(p.name for p in entry.parent.iterdir()) == ["entry"]


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    entry = tmp_path / "entry"

    def fail(staging: Path) -> None:
        (staging / "model.onnx").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        build_once(entry, fail)
    assert list(tmp_path.iterdir()) == []


def test_a_build_finished_first_elsewhere_is_kept(tmp_path: Path) -> None:
    entry = tmp_path / "entry"

    def race(staging: Path) -> None:
        (staging / "model.onnx").write_text("ours")
        entry.mkdir()  # another process renames its own build into place meanwhile
        (entry / "model.onnx").write_text("theirs")

    assert build_once(entry, race) is False
    assert (entry / "model.onnx").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]
