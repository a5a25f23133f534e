"""The sentence-transformers Dense layers a model applies to its pooled vectors.

LaBSE, distiluse-base-multilingual, sentence-t5 and gtr-t5 (among others) pool and then
project through one or more ``Dense`` modules (``2_Dense/``: a linear layer and an
activation), so their vectors are the projection's, often of another width. Each folder
holds ``config.json`` (``in_features``, ``out_features``, ``bias``,
``activation_function``) and the weights (``model.safetensors`` or ``pytorch_model.bin``,
keys ``linear.weight`` and ``linear.bias``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from embedserve.server.errors import ModelLoadError

_ACTIVATION_PREFIX = "torch.nn.modules."


def _activation(name: str, folder: Path) -> torch.nn.Module:
    """A torch.nn activation named by its class path; nothing outside torch.nn is imported."""
    kind = name.rsplit(".", 1)[-1]
    module = getattr(torch.nn, kind, None)
    if not name.startswith(_ACTIVATION_PREFIX) or not isinstance(module, type):
        raise ModelLoadError(f"{folder}: activation '{name}' is not one of torch.nn's")
    return module()  # type: ignore[no-any-return]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        weights: dict[str, torch.Tensor] = torch.load(
            folder / "pytorch_model.bin", map_location="cpu", weights_only=True
        )
        return weights
    raise ModelLoadError(f"{folder}: no model.safetensors or pytorch_model.bin")


def _dense(folder: Path) -> tuple[torch.nn.Linear, torch.nn.Module]:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    weights = _weights(folder)
    linear = torch.nn.Linear(
        int(config["in_features"]), int(config["out_features"]), bias=bool(config.get("bias", True))
    )
    try:
        linear.load_state_dict({k.removeprefix("linear."): v for k, v in weights.items()})
    except RuntimeError as exc:
        raise ModelLoadError(f"{folder}: weights do not fit config.json: {exc}") from exc
    name = config.get("activation_function") or "torch.nn.modules.linear.Identity"
    return linear, _activation(str(name), folder)


class DenseHead:
    """The model's Dense layers in float32, in order; called on pooled vectors [n, width]."""

    def __init__(self, model_path: Path, folders: Sequence[str], device: torch.device) -> None:
        try:
            layers = [_dense(model_path / folder) for folder in folders]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the Dense layers of {model_path}: {exc}") from exc
        self.in_features = layers[0][0].in_features if layers else None
        self.out_features = layers[-1][0].out_features if layers else None
        modules = [part for layer in layers for part in layer]
        self.layers = torch.nn.Sequential(*modules).to(device).float().eval()

    def width(self, pooled_width: int) -> int:
        """The width of the vectors this head returns for pooled vectors of ``pooled_width``."""
        if self.in_features not in (None, pooled_width):
            raise ModelLoadError(
                f"the first Dense layer takes {self.in_features} features; the model pools "
                f"{pooled_width}"
            )
        return self.out_features or pooled_width

    def __call__(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layers(pooled)  # type: ignore[no-any-return]
