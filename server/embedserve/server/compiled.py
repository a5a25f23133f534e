"""``torch_compile``: the encoder's forward pass compiled by torch.compile (inductor).

On a CPU most of a small pass is spent around the matrix products rather than in
them (bias copies, GELU and layer norms as separate passes over memory, weights
reordered for oneDNN on every call); inductor fuses those and, with freezing, packs
the weights once. Passes of MiniLM in bfloat16 took 1.1x to 1.5x less CPU, most on
small batches (docs/benchmarks.md, "Compiled forward pass (CPU)"). The price is paid
at load: one compilation per torch thread count the server uses, 20 to 70 s each on
2 CPU cores (inductor keeps its kernels on disk, so later starts are quicker), and
the frozen weights are a second copy of the model's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from typing import Any

import torch

from embedserve.server.bert_packed import PackedBert
from embedserve.server.errors import ModelLoadError
from embedserve.server.modernbert_packed import PackedModernBert

# Shape of the warm-up passes: any batch size and any length >= 2 reuse their compilation.
WARM_UP_SHAPE = (2, 8)


class CompiledEncoder:
    """Calls ``model`` through torch.compile with the batch dimension left open.

    With ``dynamic=True`` torch still specialises a dimension of size 1, so a lone
    text would compile the model a second time; marking the first dimension of every
    input unbacked keeps one graph for every batch size. A packed BERT compiles its
    packed layers (tensors in, so they compile whole); the packing around them runs
    as it is.
    """

    def __init__(self, model: Any) -> None:
        # Freezing is read from inductor's global config when a graph compiles (the
        # ``options`` argument of torch.compile does not reach it): without it the
        # weights are not packed for oneDNN, which is most of the gain on a CPU.
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        if isinstance(model, PackedBert):
            model.run = _open_first_dims(torch.compile(model.layers, dynamic=True))
            self._run: Any = model
        elif isinstance(model, PackedModernBert):
            model.compile_steps()
            self._run = model
        else:
            self._run = _open_first_dims(torch.compile(model, dynamic=True))

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        return self._run(input_ids=input_ids, attention_mask=attention_mask)

    @torch.inference_mode()
    def warm_up(self, thread_counts: Iterable[int], device: torch.device) -> None:
        """Compile now for each torch thread count the server's passes will run on.

        Inductor builds its CPU kernels for the calling thread's thread count and
        compiles again when it changes, so every count used later is visited here.
        After it, a call that would compile again runs uncompiled instead: dynamo is
        not thread-safe, and two passes side by side occasionally failed its guards
        (pytorch/pytorch#118260), which compiled anew for up to a minute while every
        request waited. The stance is process-wide: a process serves one model.
        """
        from torch._dynamo.exc import BackendCompilerFailed

        previous = torch.get_num_threads()
        ids = torch.ones(WARM_UP_SHAPE, dtype=torch.long, device=device)
        torch.compiler.set_stance("default")
        try:
            for count in sorted(set(thread_counts), reverse=True):
                torch.set_num_threads(count)
                self(ids, torch.ones_like(ids))
        except (BackendCompilerFailed, subprocess.CalledProcessError) as exc:
            raise ModelLoadError(compile_failure(exc)) from exc
        except RuntimeError as exc:
            # Triton's own builds (its launchers, on CUDA) fail outside inductor's wrapper.
            if "compiler" not in str(exc):
                raise
            raise ModelLoadError(compile_failure(exc)) from exc
        finally:
            torch.set_num_threads(previous)
            torch.compiler.set_stance("eager_on_recompile")


def _open_first_dims(compiled: Callable[..., Any]) -> Callable[..., Any]:
    """``compiled``, with the first dimension of each tensor it is called with unbacked."""

    def call(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                torch._dynamo.decorators.mark_unbacked(value, 0)
        return compiled(*args, **kwargs)

    return call


def compile_failure(exc: Exception) -> str:
    """What ``serve`` says when inductor could not compile the warm-up pass.

    Most often the machine has no compiler: inductor builds its CPU kernels with a C++
    compiler (``g++``, or the one ``CXX`` names), and Triton its GPU kernels' launchers
    with a C compiler and Python's headers. Slim images have none of these.
    """
    inner = getattr(exc, "inner_exception", exc)
    reason = f"{type(inner).__name__}: {inner}".strip()
    return (
        f"--torch-compile: {reason}; compiling needs a C++ compiler (g++, or the one CXX "
        "names) and, on CUDA, a C compiler (gcc, or CC) and Python's headers for Triton: "
        "install them, or start without --torch-compile"
    )


def check_compilable(backend: str) -> None:
    if backend != "torch":
        raise ModelLoadError(f"torch_compile runs the torch backend only; got '{backend}'")


def compile_encoder(model: Any, backend: str) -> CompiledEncoder:
    """``model`` compiled, or a clear error where compiling it is not supported."""
    check_compilable(backend)
    return CompiledEncoder(model)
