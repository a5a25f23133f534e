"""``embedserve finetune`` end to end on a tiny random ModernBERT: train, report, serve, errors."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedserve.server.cli import main
from embedserve.server.model_spec import read_model_spec

DATASET = Path(__file__).parents[2] / "docs" / "fine-tuning" / "support-train.jsonl"
PROMPTS = {"query": "search_query: ", "document": "search_document: "}
TEXTS = ["how do I set up invoices", "Import payroll runs. Load existing payroll runs."]


@pytest.fixture(scope="module")
def tiny_base(tiny_modernbert_path: Path) -> Path:
    """A random 2-layer ModernBERT with ``PROMPTS`` (built in tests/conftest.py)."""
    return tiny_modernbert_path


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 48 pairs of the documented (shuffled) dataset."""
    path = tmp_path_factory.mktemp("pairs") / "train.jsonl"
    lines = DATASET.read_text(encoding="utf-8").splitlines()[:48]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def finetune_args(base: Path, train: Path, out: Path, *extra: str) -> list[str]:
    return [
        "finetune", "--base", str(base), "--train", str(train), "--out", str(out),
        "--device", "cpu", "--batch-size", "16", "--lr", "1e-3", "--max-seq-length", "64",
        "--encode-batch-size", "16", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finetuned(tiny_base: Path, small_pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tuned"
    # Evaluated on its own training pairs: the check is that training moved the model.
    args = finetune_args(tiny_base, small_pairs, out, "--eval", str(small_pairs), "--epochs", "3")
    extra = ["--mine-negatives", "--matryoshka-dims", "64,32", "--cached-mini-batch", "8"]
    assert main([*args, *extra]) == 0
    return out


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_training_improves_ranking_and_writes_a_complete_model(
    finetuned: Path, tiny_base: Path
) -> None:
    report = read_json(finetuned / "finetune-report.json")
    assert report["after"]["mrr@10"] > report["before"]["mrr@10"] + 0.1
    assert report["mined_negatives"] > 0
    assert report["prompts"] == PROMPTS
    assert report["settings"]["matryoshka_dims"] == [64, 32]
    assert report["settings"]["cached_mini_batch"] == 8
    modules = [m["type"].rsplit(".", 1)[-1] for m in read_json(finetuned / "modules.json")]
    assert modules == ["Transformer", "Pooling", "Normalize"]
    # The server reads the same usage settings from both folders; trained on 64 tokens,
    # the model keeps its own 512.
    served = read_model_spec("tuned", finetuned, 512)
    assert served.prompts == PROMPTS
    assert served.max_tokens == 512
    assert dataclasses.replace(served, model_id="", path=tiny_base) == dataclasses.replace(
        read_model_spec("base", tiny_base, 512), model_id=""
    )
    siblings = {p.name for p in finetuned.parent.iterdir()}
    assert siblings == {"tuned"}, "no partial folder or checkpoints are left behind"


def test_the_report_is_no_part_of_the_models_fingerprint(finetuned: Path, tmp_path: Path) -> None:
    """Its timings differ between runs that write the same weights."""
    import shutil

    from embedserve.server.model_identity import model_fingerprint

    copy = tmp_path / "copy"
    shutil.copytree(finetuned, copy)
    (copy / "finetune-report.json").unlink()
    assert model_fingerprint(copy) == model_fingerprint(finetuned)
    edited = tmp_path / "edited"  # another folder: fingerprints are cached by folder
    shutil.copytree(finetuned, edited)
    (edited / "config.json").write_text((edited / "config.json").read_text() + " ")
    assert model_fingerprint(edited) != model_fingerprint(finetuned)


def test_stdout_holds_the_table_alone(
    tiny_base: Path, small_pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    assert main(finetune_args(tiny_base, small_pairs, out, "--save-steps", "1")) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("| metric") and all(line.startswith("|") for line in printed)


def test_documents_are_embedded_without_the_default_prompt(build_tiny_model: Any) -> None:
    """As the server embeds them: a model's default prompt (here the query's) is not added
    where the task has no prompt of its own."""
    from sentence_transformers import SentenceTransformer

    from embedserve.server.finetune.evaluation import encode

    folder = build_tiny_model(prompts={"query": "search_query: "}, default_prompt_name="query")
    model = SentenceTransformer(str(folder), device="cpu")
    got = encode(model, TEXTS, "", 8)
    bare = model.encode(TEXTS, prompt="", normalize_embeddings=True)
    prompted = model.encode(TEXTS, normalize_embeddings=True)  # the default prompt added
    assert np.abs(got - bare).max() < 1e-6
    assert np.abs(got - prompted).max() > 1e-3


def test_finetuned_folder_serves_the_vectors_sentence_transformers_computes(
    finetuned: Path, tiny_base: Path, start_server: Callable[..., Any]
) -> None:
    from sentence_transformers import SentenceTransformer

    from embedserve.client import EmbedClient

    server = start_server(model=str(finetuned), device="cpu")
    reference = SentenceTransformer(str(finetuned), device="cpu")
    base = SentenceTransformer(str(tiny_base), device="cpu")
    with EmbedClient(server.target) as client:
        for task in ("query", "document"):
            served = client.embed(TEXTS, task=task)
            expected = reference.encode(TEXTS, prompt=PROMPTS[task], normalize_embeddings=True)
            cosine = np.sum(served * expected, axis=1)
            assert cosine.min() >= 0.99999, (task, cosine)
            before = base.encode(TEXTS, prompt=PROMPTS[task], normalize_embeddings=True)
            assert np.sum(served * before, axis=1).max() < 0.999, "served the base model"


def test_resume_continues_from_the_last_checkpoint(
    tiny_base: Path, small_pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedserve.server.finetune.model_io import load_base
    from embedserve.server.finetune.pairs import read_pairs, split_heldout
    from embedserve.server.finetune.prompts import task_prompts
    from embedserve.server.finetune.training import TrainSettings, train

    out = tmp_path / "resumed"
    checkpoints = tmp_path / "resumed.checkpoints"
    # A first run that stops after one epoch, as an interrupted one would: the pairs and
    # settings of the command below (its held-out share carved out, the default warm-up).
    pairs, _ = split_heldout(read_pairs(small_pairs, "--train"), 0.1, 0)
    base = load_base(str(tiny_base), "cpu")
    settings = TrainSettings(
        epochs=1, batch_size=16, lr=1e-3, max_seq_length=64, matryoshka_dims=(),
        cached_mini_batch=None, warmup_ratio=0.1, seed=0, checkpoint_dir=checkpoints,
        save_steps=1, resume=False, device="cpu",
    )  # fmt: skip
    first = train(base.model, pairs, task_prompts(base.spec), settings)
    assert first.resumed_from is None and first.steps >= 2
    # Another run's flags: its checkpoints would be taken as they are and trained no more.
    other = finetune_args(tiny_base, small_pairs, out, "--epochs", "2", "--resume", "--seed", "5")
    assert main(other) == 2
    assert "are of another run (other training pairs; seed 0 there, 5 here)" in (
        capsys.readouterr().err
    )
    # Fewer epochs than the checkpoint has trained: exit 0, nothing trained, and a report
    # of the new epochs.
    assert main(finetune_args(tiny_base, small_pairs, out, "--epochs", "1", "--resume")) == 2
    assert (
        f"checkpoint-{first.steps} has trained {first.steps} steps (1.0 epochs), and --epochs "
        f"makes {first.steps} in all: nothing is left to train"
    ) in capsys.readouterr().err
    assert main(finetune_args(tiny_base, small_pairs, out, "--epochs", "2", "--resume")) == 0
    report = read_json(out / "finetune-report.json")
    assert report["resumed_from"] == f"checkpoint-{first.steps}"
    assert report["steps"] == 2 * first.steps
    assert not checkpoints.exists()


def test_a_run_of_one_step_trains_with_the_default_warm_up(
    tiny_base: Path, small_pairs: Path, tmp_path: Path
) -> None:
    """One batch, one epoch: the step runs at a learning rate above 0 (the trainer's own
    rounding gave it to warming up, and the base model was written back unchanged)."""
    from embedserve.server.finetune.model_io import load_base
    from embedserve.server.finetune.pairs import read_pairs
    from embedserve.server.finetune.prompts import task_prompts
    from embedserve.server.finetune.training import TrainSettings, train, warmup_steps

    # Ten pairs of ten documents: one batch holds them all.
    pairs = list({p.positive: p for p in read_pairs(small_pairs, "--train")}.values())[:10]
    settings = TrainSettings(
        epochs=1, batch_size=16, lr=1e-3, max_seq_length=64, matryoshka_dims=(),
        cached_mini_batch=None, warmup_ratio=0.1, seed=0, checkpoint_dir=tmp_path / "c",
        save_steps=100, resume=False, device="cpu",
    )  # fmt: skip
    assert warmup_steps(1, settings) == 0
    assert warmup_steps(7, dataclasses.replace(settings, epochs=3)) == 2  # of 21
    base = load_base(str(tiny_base), "cpu")
    before = [p.detach().clone() for p in base.model.parameters()]
    assert train(base.model, pairs, task_prompts(base.spec), settings).steps == 1
    after = list(base.model.parameters())
    changed = [not (a == b.detach()).all() for a, b in zip(before, after, strict=True)]
    assert sum(changed) > len(changed) // 2


def test_an_epoch_trains_every_pair_where_queries_share_documents(
    tiny_base: Path, tmp_path: Path
) -> None:
    """A batch holds one pair per document (a text twice would be its own negative): 200
    questions to 10 documents need 20 batches for a pass. The sampler counted 200 / 32 = 7,
    and the trainer ended the epoch there: 60 of the 200 pairs trained."""
    from embedserve.server.finetune.model_io import load_base
    from embedserve.server.finetune.pairs import Pair
    from embedserve.server.finetune.prompts import task_prompts
    from embedserve.server.finetune.training import TrainSettings, train

    pairs = [
        Pair(f"question {q} about topic {d}", f"the document on topic {d}", None)
        for d in range(10)
        for q in range(20)
    ]
    settings = TrainSettings(
        epochs=1, batch_size=32, lr=1e-3, max_seq_length=32, matryoshka_dims=(),
        cached_mini_batch=None, warmup_ratio=0.1, seed=0, checkpoint_dir=tmp_path / "c",
        save_steps=1000, resume=False, device="cpu",
    )  # fmt: skip
    base = load_base(str(tiny_base), "cpu")
    assert train(base.model, pairs, task_prompts(base.spec), settings).steps >= 20


def test_bad_input_is_named_and_nothing_is_written(
    tiny_base: Path, small_pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"

    def fails(args: list[str], expected: str) -> None:
        assert main(args) == 2
        assert expected in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model")) == []

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    fails(finetune_args(tiny_base, empty, out), f"--train {empty}: the file is empty")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "a", "positive": "b"}\n{"query": "c"}\n')
    fails(finetune_args(tiny_base, broken, out), "line 2: missing field 'positive'")
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"query": "a", "positive": ""}\n')
    fails(finetune_args(tiny_base, blank, out), "line 1: field 'positive' is an empty text")
    # The hint names this command's flag, not serve's --model.
    fails(finetune_args(tmp_path / "no-such-model", small_pairs, out), "and --base minilm)")
    fails(
        finetune_args(tiny_base, small_pairs, out, "--matryoshka-dims", "128"), "--matryoshka-dims"
    )
    fails(finetune_args(tiny_base, small_pairs, out, "--batch-size", "1"), "--batch-size")
    # Each of these reached torch or the trainer before, and ended in a traceback or
    # trained with a nonsensical setting.
    refused = {
        ("--lr", "nan"): "--lr must be positive; got nan",
        ("--epochs", "inf"): "--epochs must be positive; got inf",
        ("--encode-batch-size", "0"): "--encode-batch-size must be positive; got 0",
        ("--warmup-ratio", "5"): "--warmup-ratio must be at least 0 and below 1; got 5.0",
        ("--negative-margin", "-1"): "--negative-margin must be at least 0 and below 1",
        ("--device", "tpu"): "--device must be auto, cpu, cuda or cuda:N; got 'tpu'",
        ("--device", "cuda:99"): "--device cuda:99: ",
        ("--seed", "-1"): "--seed must be from 0 to 2**32 - 1; got -1",
        ("--seed", str(2**32)): "--seed must be from 0 to 2**32 - 1",
        ("--max-seq-length", "100000"): "--max-seq-length 100000 is more than the model's maximum",
    }
    for (flag, value), expected in refused.items():
        fails(finetune_args(tiny_base, small_pairs, out, flag, value), expected)
    out.mkdir()
    for existing in (out, Path(".")):  # "." raised a traceback: it has no name to add to
        assert main(finetune_args(tiny_base, small_pairs, existing)) == 2
        assert f"--out {existing} already exists" in capsys.readouterr().err


def test_a_second_run_to_one_out_is_refused_while_the_first_runs(
    tiny_base: Path, small_pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs to one --out shared its checkpoints and partial folder, and the second
    trained to its end only to fail at the rename."""
    out = tmp_path / "model"
    with open(tmp_path / "model.lock", "w") as first_run:  # as a first run holds it
        fcntl.flock(first_run, fcntl.LOCK_EX)
        assert main(finetune_args(tiny_base, small_pairs, out)) == 2
    assert f"--out {out}: another finetune run is writing it" in capsys.readouterr().err
    assert not out.exists()


def test_an_out_folder_in_which_no_file_can_be_made_is_refused_by_its_flag(
    tiny_base: Path, small_pairs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/proc passes access() for root, and the lock beside --out failed in a traceback."""
    out = Path("/proc/embedserve-finetune-out")
    assert main(finetune_args(tiny_base, small_pairs, out)) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: " in err and "Traceback" not in err, err


def test_missing_extra_names_it(
    tiny_base: Path, small_pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    assert main(finetune_args(tiny_base, small_pairs, tmp_path / "m")) == 2
    assert "pip install 'embedserve[finetune]'" in capsys.readouterr().err


def test_checkpoints_an_interrupt_cut_short_are_passed_over(
    tiny_base: Path, small_pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trainer writes a checkpoint's state file last: --resume took the newest folder
    whatever it held (a traceback), and an empty checkpoints folder, left by an interrupt
    before the first, was an earlier run to a fresh one and none to --resume, which
    found that out only after the first evaluation."""
    from embedserve.server.finetune.training import last_checkpoint

    checkpoints = tmp_path / "model.checkpoints"
    checkpoints.mkdir()
    assert last_checkpoint(checkpoints) is None
    args = finetune_args(tiny_base, small_pairs, tmp_path / "model", "--resume")
    assert main(args) == 2
    assert "--resume: there are no checkpoints in" in capsys.readouterr().err
    for step, whole in ((1, True), (2, True), (3, False)):
        (checkpoints / f"checkpoint-{step}").mkdir()
        (checkpoints / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"")
        if whole:
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(checkpoints) == str(checkpoints / "checkpoint-2")


def test_matryoshka_widths_always_hold_the_models_own() -> None:
    from embedserve.server.finetune.command import _matryoshka_dims

    assert _matryoshka_dims("128", 384) == (384, 128)
    assert _matryoshka_dims("384,256,128", 384) == (384, 256, 128)
