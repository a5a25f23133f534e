"""The Dense layers run as sentence-transformers' Dense runs them: the residual it adds
with ``use_residual`` (projected where the widths differ), Tanh where config.json names
no activation; a setting they do not run is refused by name rather than skipped.

Each reference is sentence-transformers' own Dense, saved and loaded back by it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.server.dense_head import DenseHead
from embedserve.server.errors import ModelLoadError

TEXTS = ["what is a vector database", "cats sleep for most of the day, often in the sun"]


def saved_dense(folder: Path, in_features: int, out_features: int, **options: Any) -> Path:
    import torch
    from sentence_transformers.sentence_transformer import modules as models

    activation = options.pop("activation", "Tanh")  # a torch.nn class, built here
    options["activation_function"] = getattr(torch.nn, activation)()
    torch.manual_seed(1)
    folder.mkdir()
    models.Dense(in_features, out_features, **options).save(str(folder))
    return folder


def edit_config(folder: Path, **changes: Any) -> None:
    """Set keys of config.json; a value of None drops the key."""
    config = json.loads((folder / "config.json").read_text())
    config.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        config.pop(key)
    (folder / "config.json").write_text(json.dumps(config))


def reference(folder: Path, pooled: Any) -> np.ndarray:
    from sentence_transformers.sentence_transformer import modules as models

    dense = models.Dense.load(str(folder))
    return dense({"sentence_embedding": pooled})["sentence_embedding"].detach().numpy()


def served(folder: Path, pooled: Any) -> np.ndarray:
    import torch

    head = DenseHead(folder.parent, [folder.name], torch.device("cpu"))
    with torch.no_grad():
        return head(pooled).numpy()


@pytest.mark.parametrize(
    ("in_features", "out_features", "options", "edits"),
    [
        (32, 32, {"use_residual": True}, {}),  # the input itself is added
        (32, 16, {"use_residual": True}, {}),  # added through residual.weight
        (32, 16, {"use_residual": True, "bias": False}, {}),
        (32, 16, {"activation": "Identity"}, {"activation_function": None}),  # Tanh
        (32, 16, {"activation": "PReLU"}, {}),  # an activation with weights
    ],
    ids=["residual-same", "residual-projected", "residual-no-bias", "no-activation", "prelu"],
)
def test_dense_runs_as_sentence_transformers_runs_it(
    tmp_path: Path,
    in_features: int,
    out_features: int,
    options: dict[str, Any],
    edits: dict[str, Any],
) -> None:
    import torch

    folder = saved_dense(tmp_path / "2_Dense", in_features, out_features, **options)
    edit_config(folder, **edits)
    pooled = torch.randn(3, in_features, generator=torch.Generator().manual_seed(2))
    want = reference(folder, pooled)
    got = served(folder, pooled)
    assert got.shape == want.shape == (3, out_features)
    assert np.abs(got - want).max() < 1e-5


def test_a_residual_projection_served_end_to_end(
    start_server: Any, build_tiny_model: Any, tmp_path: Path
) -> None:
    """A tiny model whose Dense adds a projected residual: the server's vectors are
    SentenceTransformer's (before the fix this start failed on residual.weight)."""
    from sentence_transformers import SentenceTransformer

    folder = build_tiny_model()
    saved_dense(folder / "2_Dense", 64, 16, use_residual=True)
    modules = json.loads((folder / "modules.json").read_text())
    dense = {**modules[2], "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    modules = [*modules[:2], dense, {**modules[2], "idx": 3, "name": "3", "path": "3_Normalize"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    want = np.asarray(SentenceTransformer(str(folder), device="cpu").encode(TEXTS))
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        assert client.model_info().dimensions == 16
        got = client.embed(TEXTS)
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"module_input_name": "token_embeddings"}, "module_input_name is 'token_embeddings'"),
        ({"module_output_name": "scores"}, "module_output_name is 'scores'"),
        ({"layer_norm": True}, "config.json sets layer_norm, which this server's Dense"),
    ],
)
def test_a_setting_the_head_does_not_run_is_refused_by_name(
    tmp_path: Path, edits: dict[str, Any], message: str
) -> None:
    import torch

    folder = saved_dense(tmp_path / "2_Dense", 32, 16)
    edit_config(folder, **edits)
    with pytest.raises(ModelLoadError, match=message):
        DenseHead(tmp_path, ["2_Dense"], torch.device("cpu"))


def test_the_pooled_vector_named_explicitly_is_served(tmp_path: Path) -> None:
    import torch

    folder = saved_dense(tmp_path / "2_Dense", 32, 16)
    edit_config(folder, module_input_name="sentence_embedding")
    pooled = torch.randn(2, 32)
    assert np.abs(served(folder, pooled) - reference(folder, pooled)).max() < 1e-5
