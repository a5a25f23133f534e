"""A model's sentence-transformers Dense layers (LaBSE, distiluse, sentence-t5) run after
pooling, so the server's vectors are sentence-transformers'; a module or pooling the
server does not run is refused before the weights load instead of skipped.

Each folder is written by sentence-transformers itself from the packaged MiniLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings

TEXTS = ["what is a vector database", "cats sleep for most of the day, often in the sun"]


def save(
    folder: Path, minilm_path: Path, *after_pooling: Any, pooling: str | tuple[str, ...] = "mean"
) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    transformer = models.Transformer(str(minilm_path))
    width = transformer.get_embedding_dimension()
    pool = models.Pooling(width, pooling_mode=pooling)
    SentenceTransformer(modules=[transformer, pool, *after_pooling]).save(str(folder))
    return folder


def sentence_transformers_vectors(folder: Path) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return np.asarray(SentenceTransformer(str(folder), device="cpu").encode(TEXTS))


def test_dense_layers_run_after_pooling(start_server, tmp_path: Path, minilm_path: Path) -> None:
    import torch
    from sentence_transformers.sentence_transformer import modules as models

    torch.manual_seed(0)
    folder = save(
        tmp_path / "dense",
        minilm_path,
        models.Dense(384, 32, activation_function=torch.nn.Tanh()),
        models.Dense(32, 8, bias=False, activation_function=torch.nn.Identity()),
        models.Normalize(),
    )
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        assert client.model_info().dimensions == 8
        got = client.embed(TEXTS)
        shorter = client.embed(TEXTS, dimensions=4)  # Matryoshka on the projection
        tokens = client.embed_tokens(TEXTS[:1], normalize=False)
        narrower = client.embed_tokens(TEXTS[:1], dimensions=200)
    want = sentence_transformers_vectors(folder)
    assert got.shape == want.shape == (2, 8)
    assert np.abs(got - want).max() < 1e-5
    cut = want[:, :4] / np.linalg.norm(want[:, :4], axis=1, keepdims=True)
    assert np.abs(shorter - cut).max() < 1e-5
    # Token vectors are the encoder's, 384 wide: the projection maps only the pooled one.
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(folder), device="cpu")
    [own] = reference.encode(TEXTS[:1], output_value="token_embeddings")
    served = np.array([t.values for t in tokens.results[0].tokens])
    assert tokens.dimensions == 384 and served.shape == tuple(own.shape)
    assert np.abs(served - own.numpy()).max() < 1e-4
    assert narrower.dimensions == 200 and len(narrower.results[0].tokens[0].values) == 200


@pytest.mark.parametrize(
    ("pooling", "after", "message"),
    [
        ("max", (), "pools by max; this server pools by one of cls, mean, lasttoken"),
        (("cls", "mean"), (), r"pools by cls \+ mean; this server pools by one of"),  # a list
        ("mean", ("LayerNorm",), r"modules this server does not run \(LayerNorm;"),
        ("mean", ("Normalize", "Dense"), "in the order Transformer, Pooling, Normalize, Dense"),
    ],
)
def test_what_the_server_would_skip_is_refused(
    tmp_path: Path,
    minilm_path: Path,
    pooling: str | tuple[str, ...],
    after: tuple[str, ...],
    message: str,
) -> None:
    import torch
    from sentence_transformers.sentence_transformer import modules as models

    made = {
        "LayerNorm": lambda: models.LayerNorm(384),
        "Normalize": models.Normalize,
        "Dense": lambda: models.Dense(384, 8, activation_function=torch.nn.Tanh()),
    }
    folder = save(tmp_path / "model", minilm_path, *(made[m]() for m in after), pooling=pooling)
    # Refused before the weights load: without them, a later check would fail on them instead.
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=message):
        EncoderModel.load(ModelSettings(model=str(folder), device="cpu"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda modules: [m for m in modules if not m["type"].endswith("Pooling")],
            r"lists sentence-transformers modules \(Transformer, Normalize\) without a Pooling",
        ),
        (
            lambda modules: [{**modules[0], "path": "0_Transformer"}, *modules[1:]],
            "keeps its Transformer module in the subfolder '0_Transformer'",
        ),
    ],
    ids=["no-pooling", "transformer-in-a-subfolder"],
)
def test_a_module_list_it_would_misread_is_refused(
    tmp_path: Path, minilm_path: Path, change: Any, message: str
) -> None:
    """Without a Pooling module the vectors were mean-pooled, a pooling the model does not
    have; a Transformer in a subfolder was refused as a config without a model_type."""
    import json

    from sentence_transformers.sentence_transformer import modules as models

    folder = save(tmp_path / "model", minilm_path, models.Normalize())
    listed = folder / "modules.json"
    listed.write_text(json.dumps(change(json.loads(listed.read_text()))))
    with pytest.raises(ModelLoadError, match=message):
        EncoderModel.load(ModelSettings(model=str(folder), device="cpu"))
