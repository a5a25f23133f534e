"""``embedserve finetune``: flags, input checks, and the run from pairs to a served folder.

Nothing heavy is imported here until the command runs, so ``embedserve --help`` stays fast
and works without the ``finetune`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedserve.server.finetune.errors import FinetuneError
from embedserve.server.finetune.pairs import (
    corpus_of,
    queries_in_both,
    read_pairs,
    split_heldout,
)
from embedserve.server.finetune.training import last_checkpoint
from embedserve.server.model_identity import FINETUNE_REPORT

EXTRA_HINT = "embedserve finetune needs its extra: pip install 'embedserve[finetune]'"
REPORT_NAME = FINETUNE_REPORT


def add_parser(commands: Any) -> None:
    """Register ``finetune`` on the CLI's subparsers."""
    parser = commands.add_parser(
        "finetune",
        help="adapt a model to (query, document) pairs; writes a folder `serve --model` loads",
        description=(
            "Contrastive training with in-batch negatives on JSONL lines "
            '{"query": ..., "positive": ..., "negative": ... (optional)}. Held-out queries '
            "are scored before and after (recall@1, recall@10, MRR@10, nDCG@10)."
        ),
    )
    parser.set_defaults(run=run)
    parser.add_argument("--base", required=True, help="alias, local folder or hub id")
    parser.add_argument("--train", required=True, type=Path, help="training pairs (JSONL)")
    parser.add_argument("--eval", type=Path, help="held-out pairs; else carved from --train")
    parser.add_argument("--eval-fraction", type=float, default=0.1, help="default 0.1")
    parser.add_argument("--out", required=True, type=Path, help="new folder for the model")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per step")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-seq-length", type=int, help="tokens while training")
    parser.add_argument(
        "--matryoshka-dims", help="comma-separated widths to train, e.g. 384,256,128"
    )
    parser.add_argument(
        "--cached-mini-batch",
        type=int,
        help="gradient caching: --batch-size in-batch negatives, computed this many at a time",
    )
    parser.add_argument(
        "--mine-negatives",
        action="store_true",
        help="add a hard negative per pair, picked from the corpus with the base model",
    )
    parser.add_argument(
        "--negative-margin",
        type=float,
        default=0.05,
        help="a mined negative scores at least this share below the positive (default 0.05)",
    )
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--save-steps", type=int, default=200, help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--encode-batch-size", type=int, default=64)


@dataclasses.dataclass(frozen=True)
class Paths:
    out: Path
    partial: Path  # the model is written here and renamed to ``out`` once complete
    checkpoints: Path


def run(args: argparse.Namespace) -> int:
    """Entry point from the CLI: 0 on success, 2 on a user error (message on stderr)."""
    try:
        report = finetune(args)
    except FinetuneError as exc:
        print(f"embedserve finetune: {exc}", file=sys.stderr)
        return 2
    from embedserve.server.finetune.metrics import format_table

    print(format_table(report["before"], report["after"]))
    print(f"model written to {args.out} (report: {args.out / REPORT_NAME})", file=sys.stderr)
    return 0


def _check_flags(args: argparse.Namespace) -> Paths:
    positive = {
        "--epochs": args.epochs,
        "--batch-size": args.batch_size,
        "--lr": args.lr,
        "--max-seq-length": args.max_seq_length,
        "--cached-mini-batch": args.cached_mini_batch,
        "--save-steps": args.save_steps,
        "--encode-batch-size": args.encode_batch_size,
    }
    for flag, value in positive.items():
        # ``not value > 0`` also refuses nan, which compares false with everything.
        if value is not None and not (math.isfinite(value) and value > 0):
            raise FinetuneError(f"{flag} must be positive; got {value}")
    if args.batch_size < 2:
        raise FinetuneError("--batch-size must be at least 2: the other pairs are the negatives")
    shares = {"--warmup-ratio": args.warmup_ratio, "--negative-margin": args.negative_margin}
    for flag, value in shares.items():
        if not 0 <= value < 1:
            raise FinetuneError(f"{flag} must be at least 0 and below 1; got {value}")
    if not 0 <= args.seed < 2**32:
        raise FinetuneError(f"--seed must be from 0 to 2**32 - 1; got {args.seed}")
    _check_device(args.device)
    out = Path(args.out)
    if out.exists():  # "." and "/" too, which have no name to add to
        raise _exists(out)
    if not out.parent.is_dir():
        raise FinetuneError(f"--out {out}: the folder {out.parent} does not exist")
    # Before the model loads and the first evaluation runs, not at the first checkpoint.
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise FinetuneError(f"--out {out}: the folder {out.parent} cannot be written to")
    paths = Paths(
        out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".checkpoints")
    )
    # Whole checkpoints only: an interrupt before the first leaves the folder empty, and
    # one while a checkpoint was written leaves that one without its state.
    earlier = paths.checkpoints.is_dir() and last_checkpoint(paths.checkpoints) is not None
    if args.resume and not earlier:
        raise FinetuneError(f"--resume: there are no checkpoints in {paths.checkpoints}")
    if not args.resume and earlier:
        raise FinetuneError(
            f"--out {out}: {paths.checkpoints} holds an earlier run's checkpoints; "
            "pass --resume to continue it, or delete that folder"
        )
    return paths


def _matryoshka_dims(text: str | None, width: int) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        dims = tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise FinetuneError(
            f"--matryoshka-dims: expected integers like 384,256; got {text}"
        ) from exc
    bad = [dim for dim in dims if not 1 <= dim <= width]
    if bad:
        raise FinetuneError(f"--matryoshka-dims must lie between 1 and {width} (the model's width)")
    # The full width is trained too: left out of the loss, it would drift untrained.
    return tuple(sorted({*dims, width}, reverse=True))


def _require_extra() -> None:
    if any(importlib.util.find_spec(m) is None for m in ("sentence_transformers", "datasets")):
        raise FinetuneError(EXTRA_HINT)


def finetune(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; returns the report that is also written next to the model."""
    paths = _check_flags(args)
    with _only_run(paths):
        return _finetune(args, paths)


def _exists(out: Path) -> FinetuneError:
    return FinetuneError(f"--out {out} already exists; choose a new folder (nothing was written)")


@contextlib.contextmanager
def _only_run(paths: Paths) -> Iterator[None]:
    """Hold a lock beside ``--out`` for the run: two runs to one ``--out`` shared its
    checkpoints and partial folder, and the second lost its trained model at the end."""
    lock = paths.out.with_name(paths.out.name + ".lock")
    try:
        held = open(lock, "w")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:  # a folder that access() passes and no file can be made in
        raise FinetuneError(f"--out {paths.out}: cannot write beside it ({exc})") from None
    with held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FinetuneError(
                f"--out {paths.out}: another finetune run is writing it ({lock} is held)"
            ) from None
        try:
            if paths.out.exists():  # written by a run that ended since the flags' check
                raise _exists(paths.out)
            yield
        finally:
            lock.unlink(missing_ok=True)


def _finetune(args: argparse.Namespace, paths: Paths) -> dict[str, Any]:
    started = time.monotonic()
    train_pairs = read_pairs(args.train, "--train")
    if args.eval is not None:
        heldout = read_pairs(args.eval, "--eval")
        if shared := queries_in_both(train_pairs, heldout):
            _log(
                f"warning: {shared} of the --eval queries are --train queries too: the "
                "figures after training include questions it was trained on"
            )
    else:
        train_pairs, heldout = split_heldout(train_pairs, args.eval_fraction, args.seed)
    _require_extra()

    from embedserve.server.finetune.evaluation import encode, evaluate
    from embedserve.server.finetune.model_io import load_base
    from embedserve.server.finetune.prompts import task_prompts
    from embedserve.server.finetune.training import TrainSettings, train, use_bf16

    base = load_base(args.base, _auto_device(args.device))
    model, spec = base.model, base.spec
    # Renamed in sentence-transformers 6; the old name still works before it.
    width_of = getattr(model, "get_embedding_dimension", None)
    width = int(width_of() if width_of else model.get_sentence_embedding_dimension())
    dims = _matryoshka_dims(args.matryoshka_dims, width)
    _check_max_seq_length(args.max_seq_length, spec.max_tokens)
    prompts = task_prompts(spec)
    corpus = corpus_of(train_pairs, heldout)
    _log(f"{len(train_pairs)} training pairs, {len(heldout)} held-out pairs, corpus {len(corpus)}")

    corpus_vectors = encode(model, corpus, prompts.document, args.encode_batch_size)
    before = evaluate(model, heldout, corpus, prompts, args.encode_batch_size, corpus_vectors)
    _log("before: " + _brief(before))

    mined = 0
    if args.mine_negatives:
        from embedserve.server.finetune.negatives import mine_hard_negatives

        train_corpus = corpus_of(train_pairs)
        query_vectors = encode(
            model, [p.query for p in train_pairs], prompts.query, args.encode_batch_size
        )
        index = {text: i for i, text in enumerate(corpus)}
        train_pairs, mined = mine_hard_negatives(
            train_pairs,
            train_corpus,
            query_vectors,
            corpus_vectors[[index[text] for text in train_corpus]],
            args.negative_margin,
        )
        _log(f"mined {mined} hard negatives for {len(train_pairs)} pairs")

    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_seq_length=args.max_seq_length,
        matryoshka_dims=dims,
        cached_mini_batch=args.cached_mini_batch,
        warmup_ratio=args.warmup_ratio,
        seed=args.seed,
        checkpoint_dir=paths.checkpoints,
        save_steps=args.save_steps,
        resume=args.resume,
        device=args.device,
    )
    train_started = time.monotonic()
    # The trainer prints its log lines: stdout is for the table alone (`> table.md`).
    with contextlib.redirect_stdout(sys.stderr):
        outcome = train(model, train_pairs, prompts, settings)
    train_seconds = time.monotonic() - train_started
    after = evaluate(model, heldout, corpus, prompts, args.encode_batch_size)
    _log("after:  " + _brief(after))

    report = {
        "base": args.base,
        "base_model_id": spec.model_id,
        "train_pairs": len(train_pairs),
        "heldout_pairs": len(heldout),
        "corpus": len(corpus),
        "mined_negatives": mined,
        "prompts": dataclasses.asdict(prompts),
        "settings": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "max_seq_length": args.max_seq_length,
            "matryoshka_dims": list(dims),
            "cached_mini_batch": args.cached_mini_batch,
            "warmup_ratio": args.warmup_ratio,
            "mine_negatives": args.mine_negatives,
            "negative_margin": args.negative_margin,
            "eval_fraction": None if args.eval is not None else args.eval_fraction,
            "seed": args.seed,
            "device": args.device,
            "bf16": use_bf16(args.device),
        },
        "before": before,
        "after": after,
        "steps": outcome.steps,
        "resumed_from": outcome.resumed_from,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    _save(model, report, paths)
    return report


def _save(model: Any, report: dict[str, Any], paths: Paths) -> None:
    """Write the folder under a temporary name and rename it: ``--out`` is whole or absent."""
    shutil.rmtree(paths.partial, ignore_errors=True)
    try:
        model.save(str(paths.partial))
        (paths.partial / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        paths.partial.rename(paths.out)
    except BaseException:
        shutil.rmtree(paths.partial, ignore_errors=True)
        raise
    shutil.rmtree(paths.checkpoints, ignore_errors=True)


def _check_device(device: str) -> None:
    """Refuse a device torch would fail on halfway through loading, with the flag's name."""
    match = re.fullmatch(r"auto|cpu|cuda(?::(\d+))?", device)
    if match is None:
        raise FinetuneError(f"--device must be auto, cpu, cuda or cuda:N; got {device!r}")
    if not device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise FinetuneError(f"--device {device}: torch sees no CUDA device here; use cpu or auto")
    # The trainer trains on the first visible GPU (and on all of them at once, with the
    # batch multiplied, where several are visible): CUDA_VISIBLE_DEVICES picks one.
    if match.group(1) is not None and int(match.group(1)) != 0:
        raise FinetuneError(
            f"--device {device}: training runs on the first visible GPU; pick that one "
            f"with CUDA_VISIBLE_DEVICES={match.group(1)} and --device cuda"
        )


def _check_max_seq_length(requested: int | None, model_max: int) -> None:
    if requested is not None and requested > model_max:
        raise FinetuneError(
            f"--max-seq-length {requested} is more than the model's maximum of {model_max} tokens"
        )


def _auto_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _brief(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in metrics.items())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
