"""Reading what the CPU can do, and what follows from it for int8."""

from __future__ import annotations

import pytest

from embedserve.server import cpu_features


@pytest.mark.parametrize(
    ("flags", "vnni"),
    [
        ({"fma", "avx", "avx2"}, False),
        ({"avx2", "avx512f", "avx512bw"}, False),
        ({"avx2", "avx512f", "avx512_vnni"}, True),
        ({"avx2", "avx_vnni"}, True),
        ({"amx_int8", "amx_bf16"}, True),
    ],
)
def test_vnni_is_read_from_the_flags(
    flags: set[str], vnni: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset(flags))
    assert cpu_features.cpu_has_vnni() is vnni


def test_the_flags_line_is_split_into_names(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\nbugs\t\t: spectre_v1\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k),
    )
    cpu_features.cpu_flags.cache_clear()
    try:
        assert cpu_features.cpu_flags() == {"fpu", "avx2", "avx512_vnni"}
    finally:
        cpu_features.cpu_flags.cache_clear()
