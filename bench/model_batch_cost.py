"""Cost of one padded forward pass by batch shape: what the batcher's limits trade off.

Runs the server's own ``EncoderModel.compute`` in this process (no gRPC, no
batcher) on batches of ``count`` sequences of ``length`` tokens, for padded
sizes from 32 to 16384 tokens, in a shuffled order repeated ``--rounds``
times, and prints tokens per second (best and median round) and milliseconds
per batch as a Markdown table. Small batches pay a fixed cost per forward
pass; very large ones outgrow the caches and page-fault their activations.

    .venv/bin/python bench/model_batch_cost.py [--model minilm] [--device cpu] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SHAPES = [
    (count, length)
    for length in (32, 128, 256)
    for count in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    if 32 <= count * length <= 16384
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=0)
    parser.add_argument(
        "--min-tokens",
        type=int,
        default=2048,
        help="tokens computed per shape and round (repeats small batches)",
    )
    args = parser.parse_args(argv)

    import torch

    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings
    from embedserve.server.windows import Window

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    model = EncoderModel.load(ModelSettings(model=args.model, device=args.device, dtype=args.dtype))

    def sync() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    rng = random.Random(0)
    vocab = model.tokenizer.pad_token_id + 1000, 20000

    def batch(count: int, length: int) -> list[Window]:
        return [Window(tuple(rng.randint(*vocab) for _ in range(length))) for _ in range(count)]

    model.compute(batch(8, 64))  # warm-up
    seconds: dict[tuple[int, int], list[float]] = {shape: [] for shape in SHAPES}
    for round_index in range(args.rounds):
        order = SHAPES[:]
        random.Random(round_index).shuffle(order)
        for count, length in order:
            windows = batch(count, length)
            repeats = max(1, args.min_tokens // (count * length))
            sync()
            started = time.perf_counter()
            for _ in range(repeats):
                model.compute(windows)
            sync()
            seconds[(count, length)].append((time.perf_counter() - started) / repeats)

    print(
        f"model {args.model} on {model.device}, torch threads {torch.get_num_threads()}, "
        f"{args.rounds} rounds\n"
    )
    print("| length | batch | padded tokens | tokens/s best | tokens/s median | ms per batch |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count, length in sorted(SHAPES, key=lambda s: (s[1], s[0])):
        values = seconds[(count, length)]
        tokens = count * length
        print(
            f"| {length} | {count} | {tokens} | {tokens / min(values):,.0f} | "
            f"{tokens / statistics.median(values):,.0f} | {1000 * min(values):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
