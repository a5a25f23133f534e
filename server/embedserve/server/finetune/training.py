"""Contrastive training with in-batch negatives, through sentence-transformers' trainer."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedserve.server.finetune.errors import FinetuneError
from embedserve.server.finetune.pairs import Pair
from embedserve.server.finetune.prompts import TaskPrompts


@dataclasses.dataclass(frozen=True)
class TrainOutcome:
    resumed_from: str | None  # the checkpoint folder a resumed run started from
    steps: int


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    epochs: float
    batch_size: int
    lr: float
    max_seq_length: int | None
    matryoshka_dims: tuple[int, ...]
    # Gradient caching: large effective batches (more in-batch negatives) in small memory.
    cached_mini_batch: int | None
    warmup_ratio: float
    seed: int
    checkpoint_dir: Path
    save_steps: int
    resume: bool
    device: str


def _datasets(pairs: Sequence[Pair]) -> Any:
    """One dataset of pairs and/or one of triplets: a column must be set in every row."""
    from datasets import Dataset, DatasetDict

    triplets = [p for p in pairs if p.negative is not None]
    doubles = [p for p in pairs if p.negative is None]
    parts: dict[str, Any] = {}
    if doubles:
        parts["pairs"] = Dataset.from_dict(
            {"query": [p.query for p in doubles], "positive": [p.positive for p in doubles]}
        )
    if triplets:
        parts["triplets"] = Dataset.from_dict(
            {
                "query": [p.query for p in triplets],
                "positive": [p.positive for p in triplets],
                "negative": [p.negative for p in triplets],
            }
        )
    return next(iter(parts.values())) if len(parts) == 1 else DatasetDict(parts)


def _loss(model: Any, settings: TrainSettings) -> Any:
    from sentence_transformers.sentence_transformer import losses

    base: Any
    if settings.cached_mini_batch:
        base = losses.CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=settings.cached_mini_batch, show_progress_bar=False
        )
    else:
        base = losses.MultipleNegativesRankingLoss(model)
    if settings.matryoshka_dims:
        return losses.MatryoshkaLoss(model, base, matryoshka_dims=list(settings.matryoshka_dims))
    return base


TRAINER_STATE = "trainer_state.json"
# What a run trains on and how, kept beside its checkpoints: a resumed run must match it.
RUN_RECORD = "finetune-run.json"


def _run_record(pairs: Sequence[Pair], settings: TrainSettings) -> dict[str, Any]:
    """What a resumed run must share with the one it continues (its epochs may grow)."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps([pair.query, pair.positive, pair.negative]).encode())
    kept = ("batch_size", "lr", "max_seq_length", "cached_mini_batch", "warmup_ratio", "seed")
    return {
        "pairs": digest.hexdigest(),
        "matryoshka_dims": list(settings.matryoshka_dims),
        **{name: getattr(settings, name) for name in kept},
    }


def _check_resumed_run(record: Path, run: dict[str, Any]) -> None:
    """Refuse to resume checkpoints of another run: the trainer took them as they were
    and trained nothing more, and the report named this run's data and settings."""
    if not record.is_file():
        return  # checkpoints of a version that kept no record
    earlier = json.loads(record.read_text("utf-8"))
    changed = [
        f"{name} {earlier.get(name)!r} there, {value!r} here"
        for name, value in run.items()
        if name != "pairs" and earlier.get(name) != value
    ]
    if earlier.get("pairs") != run["pairs"]:
        changed.insert(0, "other training pairs")
    if changed:
        raise FinetuneError(
            f"--resume: the checkpoints in {record.parent} are of another run "
            f"({'; '.join(changed)}): give its files and flags (--epochs may grow), or "
            "delete that folder"
        )


def _check_steps_left(checkpoint: Path, total_steps: int) -> None:
    """Refuse a resumed run that its checkpoint has trained already (fewer --epochs than
    it was begun with): the trainer trained nothing and the report gave the new epochs."""
    state = json.loads((checkpoint / TRAINER_STATE).read_text("utf-8"))
    done = int(state.get("global_step", 0))
    if done >= total_steps:
        raise FinetuneError(
            f"--resume: {checkpoint.name} has trained {done} steps ({state.get('epoch')} "
            f"epochs), and --epochs makes {total_steps} in all: nothing is left to train; "
            "give --epochs above that"
        )


def use_bf16(device: str) -> bool:
    """bf16 mixed precision on a GPU that has it; CPUs train in float32."""
    import torch

    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return on_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def last_checkpoint(folder: Path) -> str | None:
    """The trainer's newest whole ``checkpoint-STEP`` folder in ``folder``, if any. The
    trainer writes its state file last: a checkpoint without one was cut short by the
    interrupt, and the one before it is where the run goes on."""
    steps = [
        int(path.name.split("-", 1)[1])
        for path in folder.glob("checkpoint-*")
        if path.name.split("-", 1)[1].isdigit() and (path / TRAINER_STATE).is_file()
    ]
    return str(folder / f"checkpoint-{max(steps)}") if steps else None


def warmup_steps(batches_per_epoch: int, settings: TrainSettings) -> int:
    """The warm-up's steps: ``warmup_ratio`` of the run's, rounded down. (The trainer rounds
    a ratio up, so a run of one step spent it warming up, at a learning rate of 0, and
    wrote the base model back unchanged.)"""
    return int(settings.warmup_ratio * math.ceil(settings.epochs * batches_per_epoch))


def train(
    model: Any, pairs: Sequence[Pair], prompts: TaskPrompts, settings: TrainSettings
) -> TrainOutcome:
    """Train ``model`` in place; checkpoints go to ``settings.checkpoint_dir``."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    from embedserve.server.finetune.sampler import WholePassSampler

    served_length = model.max_seq_length
    if settings.max_seq_length:
        model.max_seq_length = settings.max_seq_length
    args = SentenceTransformerTrainingArguments(
        output_dir=str(settings.checkpoint_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.lr,
        seed=settings.seed,
        bf16=use_bf16(settings.device),
        use_cpu=settings.device == "cpu",
        # A text twice in one batch would be its own "negative".
        batch_sampler=WholePassSampler,
        prompts=prompts.by_column() or None,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        logging_steps=max(1, settings.save_steps // 5),
        report_to="none",
        disable_tqdm=False,
        dataloader_drop_last=False,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=_datasets(pairs), loss=_loss(model, settings)
    )
    # Known once the sampler has counted an epoch's batches.
    batches = len(trainer.get_train_dataloader())
    trainer.args.warmup_steps = warmup_steps(batches, settings)
    run, record = _run_record(pairs, settings), settings.checkpoint_dir / RUN_RECORD
    checkpoint = None
    if settings.resume:
        checkpoint = last_checkpoint(settings.checkpoint_dir)
        if checkpoint is None:
            raise FinetuneError(f"--resume: there are no checkpoints in {settings.checkpoint_dir}")
        _check_resumed_run(record, run)
        _check_steps_left(Path(checkpoint), math.ceil(settings.epochs * batches))
    else:
        settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(run) + "\n", "utf-8")
    trainer.train(resume_from_checkpoint=checkpoint)
    # The training length is a training setting; the served model keeps its own.
    model.max_seq_length = served_length
    return TrainOutcome(
        resumed_from=Path(checkpoint).name if checkpoint else None,
        steps=int(trainer.state.global_step),
    )
