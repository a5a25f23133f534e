"""The sentence-transformers Dense layers a model applies to its pooled vectors.

LaBSE, distiluse-base-multilingual, sentence-t5 and gtr-t5 (among others) pool and then
project through one or more ``Dense`` modules (``2_Dense/``: a linear layer and an
activation), so their vectors are the projection's, often of another width. Each folder
holds ``config.json`` (``in_features``, ``out_features``, ``bias``,
``activation_function``, and from sentence-transformers 5.7 ``use_residual`` when true)
and the weights (``model.safetensors`` or ``pytorch_model.bin``, keys ``linear.weight``,
``linear.bias`` and, for a residual between widths, ``residual.weight``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from embedserve.server.errors import ModelLoadError

_ACTIVATION_PREFIX = "torch.nn.modules."
# sentence-transformers' Dense.load falls back to its constructor's default, Tanh, when
# config.json names no activation (not Identity: that needs the key).
_DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"
# The feature a Dense layer must read and write for its output to be the served vector.
_POOLED = "sentence_embedding"
# config.json keys this head runs; any other changes the vectors in a way it would skip.
_SERVED_KEYS = frozenset(
    {
        "in_features",
        "out_features",
        "bias",
        "activation_function",
        "use_residual",
        "module_input_name",
        "module_output_name",
    }
)


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


def _check_config(config: dict[str, Any], folder: Path) -> None:
    """Refuse settings this head would skip: its vectors would not be the model's."""
    unknown = sorted(set(config) - _SERVED_KEYS)
    if unknown:
        raise ModelLoadError(
            f"{folder}: config.json sets {', '.join(unknown)}, which this server's Dense "
            f"layers do not run (they run {', '.join(sorted(_SERVED_KEYS))}): its vectors "
            "would differ from the model's"
        )
    for key in ("module_input_name", "module_output_name"):
        if config.get(key) not in (None, _POOLED):
            raise ModelLoadError(
                f"{folder}: config.json's {key} is {config[key]!r}; this server's Dense "
                f"layers map only the pooled vector ({_POOLED!r})"
            )


class _Dense(torch.nn.Module):
    """sentence-transformers' Dense: activation(linear(x)), plus x (projected without a
    bias where the widths differ) when ``use_residual``. Attribute names are its own, so
    its saved weights load as they are."""

    def __init__(self, config: dict[str, Any], folder: Path) -> None:
        super().__init__()
        width_in, width_out = int(config["in_features"]), int(config["out_features"])
        self.linear = torch.nn.Linear(width_in, width_out, bias=bool(config.get("bias", True)))
        name = config.get("activation_function", _DEFAULT_ACTIVATION)
        # An explicit null is the constructor's None: no activation.
        self.activation_function = _activation(
            str(name or "torch.nn.modules.linear.Identity"), folder
        )
        self.residual: torch.nn.Module | None = None
        if config.get("use_residual", False):
            same = width_in == width_out
            self.residual = (
                torch.nn.Identity() if same else torch.nn.Linear(width_in, width_out, bias=False)
            )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.activation_function(self.linear(pooled))
        return out if self.residual is None else out + self.residual(pooled)


def _dense(folder: Path) -> _Dense:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    _check_config(config, folder)
    layer = _Dense(config, folder)
    try:
        layer.load_state_dict(_weights(folder))
    except RuntimeError as exc:
        raise ModelLoadError(f"{folder}: weights do not fit config.json: {exc}") from exc
    return layer


class DenseHead:
    """The model's Dense layers in float32, in order; called on pooled vectors [n, width]."""

    def __init__(self, model_path: Path, folders: Sequence[str], device: torch.device) -> None:
        try:
            layers = [_dense(model_path / folder) for folder in folders]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the Dense layers of {model_path}: {exc}") from exc
        self.in_features = layers[0].linear.in_features if layers else None
        self.out_features = layers[-1].linear.out_features if layers else None
        self.layers = torch.nn.Sequential(*layers).to(device).float().eval()

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
