"""Pooling as the model's own files say: include_prompt, CLS pooling, default_prompt_name.

Each case compares with sentence-transformers loading the same folder, and the
batch case with the same windows computed one by one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.model_spec import PoolingMode
from embedserve.server.windows import Window
from embedserve.v1 import embedding_pb2 as pb

PROMPTS = {"query": "search_query: ", "document": "search_document: "}
TEXTS = ["what is a vector database", "cats sleep for most of the day, often in the sun"]


def sentence_transformers_vectors(folder: Path, texts: list[str], **encode: Any) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return np.asarray(model.encode(texts, **encode))


def test_same_ids_with_different_pool_starts_pool_separately(build_tiny_model) -> None:
    folder = build_tiny_model(prompts=PROMPTS, pooling={"include_prompt": False})
    model = EncoderModel.load(ModelSettings(model=str(folder), device="cpu"))
    ids = model.tokenizer.encode(["search_query: " + TEXTS[0]], "", _overflow())[0].windows[0]
    windows = [
        Window(ids, 0, PoolingMode.MEAN),
        Window(ids, 3, PoolingMode.MEAN),
        Window(ids, 3, PoolingMode.CLS),
    ]
    together = model.compute(windows)
    alone = [model.compute([window])[0] for window in windows]
    for got, want in zip(together, alone, strict=True):
        assert np.abs(got - want).max() < 1e-5
    assert np.abs(together[0] - together[1]).max() > 1e-3  # the starts really differ


def test_include_prompt_false_pools_without_the_prompt(start_server, build_tiny_model) -> None:
    folder = build_tiny_model(prompts=PROMPTS, pooling={"include_prompt": False})
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        query = client.embed(TEXTS, task="query")
        spelled_out = client.embed([PROMPTS["query"] + t for t in TEXTS], task="none")
    want = sentence_transformers_vectors(folder, TEXTS, prompt_name="query")
    assert np.abs(query - want).max() < 1e-5
    # Same tokens, but here the prompt is text and is pooled with the rest, [CLS] too:
    # without a prompt every token is pooled, as sentence-transformers pools them.
    assert np.abs(query - spelled_out).max() > 1e-3
    plain = sentence_transformers_vectors(folder, [PROMPTS["query"] + t for t in TEXTS])
    assert np.abs(spelled_out - plain).max() < 1e-5


def test_cls_pooling_read_from_the_model_config(start_server, build_tiny_model) -> None:
    folder = build_tiny_model(
        prompts=PROMPTS,
        pooling={"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
    )
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        assert client.model_info().pooling == pb.POOLING_CLS
        got = client.embed(TEXTS, task="none")
        mean = client.embed(TEXTS, task="none", pooling="mean")
    want = sentence_transformers_vectors(folder, TEXTS)
    assert np.abs(got - want).max() < 1e-5
    assert np.abs(got - mean).max() > 1e-3


def test_cls_pooling_without_the_prompt_takes_the_texts_first_token(
    start_server, build_tiny_model
) -> None:
    """sentence-transformers masks the prompt ([CLS] with it) and takes the first token
    left; without a prompt that is [CLS]. The mode as sentence-transformers 6 saves it: a
    list of names."""
    pooling = {"pooling_mode": ["cls"], "pooling_mode_mean_tokens": False, "include_prompt": False}
    folder = build_tiny_model(prompts=PROMPTS, pooling=pooling)
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        assert client.model_info().pooling == pb.POOLING_CLS
        query = client.embed(TEXTS, task="query")
        plain = client.embed(TEXTS, task="none")
    assert (
        np.abs(query - sentence_transformers_vectors(folder, TEXTS, prompt_name="query")).max()
        < 1e-5
    )
    assert np.abs(plain - sentence_transformers_vectors(folder, TEXTS)).max() < 1e-5


@pytest.mark.parametrize("default_prompt_name", ["query", "document"])
def test_default_prompt_name_read_from_the_model_files(
    start_server, build_tiny_model, default_prompt_name
) -> None:
    folder = build_tiny_model(prompts=PROMPTS, default_prompt_name=default_prompt_name)
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        by_default = client.embed(TEXTS)
        by_task = client.embed(TEXTS, task=default_prompt_name)
        without = client.embed(TEXTS, task="none")
    want = sentence_transformers_vectors(folder, TEXTS)  # applies the default prompt itself
    assert np.abs(by_default - want).max() < 1e-5
    assert np.abs(by_default - by_task).max() < 1e-6
    assert np.abs(by_default - without).max() > 1e-3


def _overflow() -> Any:
    from embedserve.server.tokenization import Overflow

    return Overflow.TRUNCATE_RIGHT


def test_do_lower_case_lowercases_texts_and_prompts(start_server, tmp_path, minilm_path) -> None:
    """A cased tokenizer over an uncased vocabulary: capitals are unknown tokens unless the
    text is lowercased first, as sentence-transformers does for do_lower_case."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import BertTokenizerFast

    cased = tmp_path / "cased"
    BertTokenizerFast(str(minilm_path / "vocab.txt"), do_lower_case=False).save_pretrained(cased)
    for name in ("config.json", "model.safetensors"):
        (cased / name).write_bytes((minilm_path / name).read_bytes())
    transformer = modules.Transformer(str(cased))
    pooling = modules.Pooling(transformer.get_embedding_dimension())
    folder = tmp_path / "model"
    SentenceTransformer(modules=[transformer, pooling]).save(str(folder), create_model_card=False)
    # As models saved by sentence-transformers 2 to 5 say it (BAAI's bge, for one).
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    config["do_lower_case"] = True
    (folder / "sentence_bert_config.json").write_text(json.dumps(config))
    capitals = ["What Is A Vector Database", "CATS SLEEP MOST OF THE DAY"]
    greek = "ΟΔΟΣ ΣΟΦΙΑΣ"  # a last capital sigma: str.lower gives the final form, the tokenizer not
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        got = client.embed(capitals, task="none", prompt="Query: ")
        got_greek = client.embed([greek], task="none")
        lower = client.embed([t.lower() for t in capitals], task="none", prompt="query: ")
        # "İ" lowercases to two characters: offsets still point into the text as sent.
        text = "İstanbul Big CAT"
        tokens = client.embed_tokens([text], task="none", prompt="Query: ").results[0].tokens
    spans = [text[t.start : t.end] for t in tokens if t.end > t.start]
    assert spans == ["İstanbul", "Big", "CAT"]
    want = SentenceTransformer(str(folder), device="cpu").encode(capitals, prompt="Query: ")
    assert np.abs(got - want).max() < 1e-5
    assert np.abs(got - lower).max() < 1e-6  # capitals and the prompt's alike
    want_greek = SentenceTransformer(str(folder), device="cpu").encode([greek])
    assert np.abs(got_greek - want_greek).max() < 1e-5
