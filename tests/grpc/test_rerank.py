"""Rerank: the served cross-encoder scores (query, document) pairs as sentence-transformers'
CrossEncoder does, over gRPC, batched with other callers, best first."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from tiny_reranker import build_tiny_reranker

from embedserve.client import AsyncEmbedClient, EmbedClient
from embedserve.server.errors import ModelLoadError
from embedserve.server.model_settings import ModelSettings, RerankerSettings
from embedserve.server.reranker_model import RerankerModel
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc

QUERY = "how do rockets reach orbit"
DOCUMENTS = [
    "A rocket burns its fuel to climb out of the atmosphere and reach orbit.",
    "Bake the bread for forty minutes.",
    "orbit " * 700,  # past the reranker's 512 tokens: cut
    "Satellites circle the planet.",
    "The striker scored a penalty.",
]


def cross_encoder_scores(path: Path, pairs: list[tuple[str, str]]) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), device="cpu").predict(pairs, batch_size=2)


def rerank(target: str, **fields: Any) -> pb.RerankResponse:
    with grpc.insecure_channel(target) as channel:
        response: pb.RerankResponse = pb_grpc.EmbeddingServiceStub(channel).Rerank(
            pb.RerankRequest(**fields)
        )
    return response


@pytest.mark.parametrize("architecture", ["bert", "modernbert"])
def test_scores_equal_sentence_transformers_cross_encoder(
    start_server, minilm_model: Any, minilm_path: Path, tmp_path: Path, architecture: str
) -> None:
    folder = build_tiny_reranker(tmp_path / "reranker", minilm_path, architecture=architecture)
    server = start_server(loaded=minilm_model, reranker=str(folder))
    reply = rerank(server.target, query=QUERY, documents=DOCUMENTS)
    expected = cross_encoder_scores(folder, [(QUERY, d) for d in DOCUMENTS])
    got = {r.index: r.score for r in reply.results}
    assert sorted(got) == list(range(len(DOCUMENTS)))
    np.testing.assert_allclose([got[i] for i in range(len(DOCUMENTS))], expected, atol=2e-6)
    assert [r.index for r in reply.results] == list(np.argsort(-expected, kind="stable"))
    truncated = {r.index for r in reply.results if r.truncated}
    assert truncated == {2} and {r.index: r.token_count for r in reply.results}[2] == 512
    assert reply.model == str(folder)


def test_bert_pairs_read_their_token_types(reranker_server: Any, tiny_reranker_path: Path) -> None:
    """The second text's token type is 1: without it a BERT cross-encoder scores otherwise."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reranker_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reranker_path).eval()
    inputs = tokenizer(QUERY, DOCUMENTS[0], return_tensors="pt")
    with torch.no_grad():
        typed = torch.sigmoid(model(**inputs).logits)[0, 0].item()
        inputs["token_type_ids"].zero_()
        untyped = torch.sigmoid(model(**inputs).logits)[0, 0].item()
    assert abs(typed - untyped) > 1e-4  # 50 times the tolerance below: it tells them apart
    [result] = rerank(reranker_server.target, query=QUERY, documents=DOCUMENTS[:1]).results
    assert result.score == pytest.approx(typed, abs=2e-6)


def test_top_n_documents_raw_scores_and_usage(reranker_server: Any) -> None:
    full = rerank(reranker_server.target, query=QUERY, documents=DOCUMENTS)
    scores = [r.score for r in full.results]
    assert scores == sorted(scores, reverse=True)
    assert full.usage.total_tokens == sum(r.token_count for r in full.results)
    assert not any(r.document for r in full.results)
    best = rerank(
        reranker_server.target, query=QUERY, documents=DOCUMENTS, top_n=2, return_documents=True
    )
    assert [(r.index, r.score) for r in best.results] == [
        (r.index, r.score) for r in full.results[:2]
    ]
    assert [r.document for r in best.results] == [DOCUMENTS[r.index] for r in best.results]
    assert best.usage.total_tokens == full.usage.total_tokens  # every pair was read
    raw = rerank(reranker_server.target, query=QUERY, documents=DOCUMENTS, raw_scores=True)
    logits = {r.index: r.score for r in raw.results}
    assert min(logits.values()) < 0 or max(logits.values()) > 1  # logits, not probabilities
    for result in full.results:
        assert result.score == pytest.approx(1 / (1 + np.exp(-logits[result.index])), abs=1e-6)


def test_python_client_and_model_info(reranker_server: Any, tiny_reranker_path: Path) -> None:
    with EmbedClient(reranker_server.target) as client:
        ranked = client.rerank(QUERY, DOCUMENTS, top_n=3, return_documents=True)
        info = client.model_info()
    reply = rerank(reranker_server.target, query=QUERY, documents=DOCUMENTS, top_n=3)
    assert [(r.index, r.score) for r in ranked] == [(r.index, r.score) for r in reply.results]
    assert [r.document for r in ranked] == [DOCUMENTS[r.index] for r in ranked]

    async def from_asyncio() -> list[Any]:
        async with AsyncEmbedClient(reranker_server.target) as client:
            return await client.rerank(QUERY, DOCUMENTS, top_n=3, return_documents=True)

    assert asyncio.run(from_asyncio()) == ranked
    assert info.HasField("reranker")
    assert info.reranker.model_id == str(tiny_reranker_path)
    assert (info.reranker.max_tokens, info.reranker.activation) == (512, "sigmoid")
    assert info.reranker.model_type == "bert"


def test_overflow_error_left_and_chunk(reranker_server: Any, tiny_reranker_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    long = " ".join(f"word{i % 50} planet" for i in range(400))  # about 1,200 tokens
    documents = ["short one", long]
    with pytest.raises(grpc.RpcError) as refused:
        rerank(reranker_server.target, query=QUERY, documents=documents, overflow=3)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "documents[1]" in (refused.value.details() or "")
    assert "512" in (refused.value.details() or "")

    tokenizer = AutoTokenizer.from_pretrained(tiny_reranker_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reranker_path).eval()

    def scores(encoded: Any) -> list[float]:
        with torch.no_grad():
            return torch.sigmoid(model(**encoded).logits[:, 0]).tolist()

    tokenizer.truncation_side = "left"
    left_expected = scores(
        tokenizer(QUERY, long, truncation="longest_first", max_length=512, return_tensors="pt")
    )[0]
    left = rerank(reranker_server.target, query=QUERY, documents=[long], overflow=2).results[0]
    assert left.truncated and left.score == pytest.approx(left_expected, abs=2e-6)

    tokenizer.truncation_side = "right"
    windows = tokenizer(
        [QUERY],
        [long],
        truncation="only_second",
        max_length=512,
        stride=128,
        return_overflowing_tokens=True,
        padding=True,
        return_tensors="pt",
    )
    windows.pop("overflow_to_sample_mapping")
    window_scores = scores(windows)
    assert len(window_scores) >= 3
    chunk = rerank(reranker_server.target, query=QUERY, documents=[long], overflow=4).results[0]
    assert not chunk.truncated
    assert chunk.score == pytest.approx(max(window_scores), abs=2e-6)
    assert chunk.token_count == int(windows["attention_mask"].sum())

    # A query leaving the document less than a quarter of the 512 tokens ("query " * 400
    # is 400 tokens, the pair's special tokens 3): each window would move on by a few
    # tokens and read all 512 again.
    for words, room in ((600, 0), (400, 109)):
        with pytest.raises(grpc.RpcError) as no_room:
            rerank(reranker_server.target, query="query " * words, documents=[long], overflow=4)
        assert no_room.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (no_room.value.details() or "").startswith(
            f"the query leaves {room} of the reranker's 512 tokens for documents[0]; under "
            "CHUNK each window holds the whole query and at least a quarter of them (128)"
        )
    roomy = rerank(reranker_server.target, query="query " * 300, documents=[long], overflow=4)
    assert not roomy.results[0].truncated


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"query": "", "documents": ["a"]}, "query is empty"),
        ({"query": "q", "documents": []}, "documents must not be empty"),
        ({"query": "q", "documents": ["a", ""]}, "documents[1] is empty"),
        (
            {"query": "q", "documents": ["a"] * 4},
            "documents has 4 items; the limit is 3 per request (max_inputs_per_request)",
        ),
        # The query is read with each document: 7,000 characters three times over.
        (
            {"query": "q" * 7000, "documents": ["a", "b", "c"]},
            "the query, read with each of the 3 documents, makes 21000 characters to "
            "tokenize, more than one request may carry (20000, max_message_bytes)",
        ),
    ],
)
def test_requests_refused_name_the_field(
    start_server, minilm_model: Any, tiny_reranker_path: Path, fields: dict[str, Any], named: str
) -> None:
    server = start_server(
        loaded=minilm_model,
        reranker=str(tiny_reranker_path),
        max_inputs_per_request=3,
        max_message_bytes=20_000,
    )
    with pytest.raises(grpc.RpcError) as refused:
        rerank(server.target, **fields)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert named in (refused.value.details() or "")


def test_without_a_reranker_rerank_is_a_failed_precondition(minilm_server: Any) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        rerank(minilm_server.target, query=QUERY, documents=DOCUMENTS)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "--reranker" in (refused.value.details() or "")
    with EmbedClient(minilm_server.target) as client:
        assert not client.model_info().HasField("reranker")


def test_concurrent_callers_share_batches_and_get_their_own_scores(reranker_server: Any) -> None:
    requests = [(f"question {i} about orbits", DOCUMENTS[: 1 + i % 4]) for i in range(24)]
    alone = [rerank(reranker_server.target, query=q, documents=d) for q, d in requests]
    metrics = reranker_server.server.metrics.registry
    batches_before = metrics.get_sample_value("embedserve_rerank_batch_size_count")
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        together = list(
            pool.map(lambda r: rerank(reranker_server.target, query=r[0], documents=r[1]), requests)
        )
    batches = metrics.get_sample_value("embedserve_rerank_batch_size_count") - batches_before
    pairs = sum(len(d) for _, d in requests)
    assert batches < len(requests)  # callers met in batches
    for one, shared in zip(alone, together, strict=True):
        assert [r.index for r in one.results] == [r.index for r in shared.results]
        np.testing.assert_allclose(
            [r.score for r in one.results], [r.score for r in shared.results], atol=2e-6
        )
    assert metrics.get_sample_value("embedserve_rerank_tokens_total") >= pairs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_labels": 2}, "has 2 outputs"),
        ({"activation": "my_package.Softplus"}, "activation 'my_package.Softplus'"),
    ],
)
def test_a_reranker_this_server_would_score_wrongly_is_refused(
    tmp_path: Path, minilm_path: Path, change: dict[str, Any], message: str
) -> None:
    folder = build_tiny_reranker(tmp_path / "reranker", minilm_path, **change)
    with pytest.raises(ModelLoadError, match=message):
        RerankerModel.load(RerankerSettings(reranker=str(folder)), ModelSettings(device="cpu"))


def test_a_roberta_reranker_reads_pairs_up_to_its_positions_less_the_padding_offset(
    start_server: Any, minilm_model: Any, tmp_path: Path, minilm_path: Path
) -> None:
    """Without a model_max_length, the maximum was all 66 positions: RoBERTa's first token
    takes position padding id + 1, and the warm-up's long pair failed the start ("index 66
    is out of bounds")."""
    folder = build_tiny_reranker(
        tmp_path / "roberta", minilm_path, architecture="roberta", max_positions=66
    )
    config_file = folder / "tokenizer_config.json"
    settings = json.loads(config_file.read_text())
    del settings["model_max_length"]
    config_file.write_text(json.dumps(settings))
    server = start_server(loaded=minilm_model, reranker=str(folder))
    with EmbedClient(server.target) as client:
        assert client.model_info().reranker.max_tokens == 66 - 1  # MiniLM's padding id is 0
    reply = rerank(server.target, query=QUERY, documents=["orbit " * 200, "bread bakes"])
    assert sorted(r.index for r in reply.results) == [0, 1]
    assert all(np.isfinite(r.score) for r in reply.results)


def test_the_models_own_activation_is_applied(
    start_server, minilm_model: Any, tmp_path: Path, minilm_path: Path
) -> None:
    folder = build_tiny_reranker(
        tmp_path / "identity", minilm_path, activation="torch.nn.modules.linear.Identity"
    )
    assert (
        "Identity"
        in json.loads((folder / "config.json").read_text())["sentence_transformers"][
            "activation_fn"
        ]
    )
    server = start_server(loaded=minilm_model, reranker=str(folder))
    expected = cross_encoder_scores(folder, [(QUERY, d) for d in DOCUMENTS])
    assert expected.min() < 0 or expected.max() > 1  # identity: logits, as the model says
    reply = rerank(server.target, query=QUERY, documents=DOCUMENTS)
    got = {r.index: r.score for r in reply.results}
    np.testing.assert_allclose([got[i] for i in range(len(DOCUMENTS))], expected, atol=2e-6)


def test_command_line(
    reranker_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from embedserve.client.cli import main as cli_main

    target = ["--target", reranker_server.target]
    with EmbedClient(reranker_server.target) as client:
        expected = client.rerank(QUERY, DOCUMENTS[:4])
    assert cli_main(["rerank", QUERY, *DOCUMENTS[:4], *target]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(int(i), text) for _, i, text in rows] == [
        (r.index, DOCUMENTS[r.index]) for r in expected
    ]
    assert [float(score) for score, _, _ in rows] == pytest.approx(
        [r.score for r in expected], abs=1e-4
    )

    file = tmp_path / "docs.jsonl"
    file.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": d}) + "\n" for i, d in enumerate(DOCUMENTS[:4]))
    )
    assert cli_main(["rerank", QUERY, "--file", str(file), "--top-n", "2", "--json", *target]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["id"], line["index"]) for line in lines] == [
        (f"d{r.index}", r.index) for r in expected[:2]
    ]
    # The same documents one a line on standard input.
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(DOCUMENTS[:4]) + "\n"))
    assert cli_main(["rerank", QUERY, "--file", "-", "--top-n", "1", *target]) == 0
    [(_, index, text)] = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert (int(index), text) == (expected[0].index, DOCUMENTS[expected[0].index])

    assert cli_main(["rerank", QUERY, *target]) == 2
    assert "as arguments or with --file" in capsys.readouterr().err
    assert cli_main(["rerank", QUERY, "a", "--overflow", "error", *target, "--top-n", "-1"]) == 2
    assert "--top-n must be 0" in capsys.readouterr().err


def test_a_reranker_that_is_not_there_is_named_as_the_reranker(tmp_path: Path) -> None:
    settings = RerankerSettings(reranker=str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match=r"cannot load reranker .*--reranker takes"):
        RerankerModel.load(settings, ModelSettings(device="cpu"))


def test_the_reranker_runs_in_the_encoders_number_format(
    start_server: Any, tiny_reranker_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --backend torch-int8 (or onnx) the encoder runs in float32, and so must the
    reranker: it ran in bfloat16 on a CPU with AMX, its number format picked as for the
    torch backend. (AMX is assumed here, so that the test means the same on any CPU.)"""
    import torch

    monkeypatch.setattr("embedserve.server.model.cpu_has_bf16_matrix_units", lambda: True)
    running = start_server(
        backend="torch-int8", dtype="auto", device="cpu", reranker=str(tiny_reranker_path)
    )
    encoder, reranker = running.server.model, running.server.embedding_service._reranker
    assert encoder.dtype == torch.float32
    assert reranker.model.dtype == torch.float32
    assert {p.dtype for p in reranker.model._model.parameters()} == {torch.float32}
    with EmbedClient(running.target) as client:
        assert client.model_info().dtype == "float32"
    # Loaded alone, the reranker picks as the encoder would for the backend.
    settings = RerankerSettings(reranker=str(tiny_reranker_path))
    for backend in ("onnx", "torch-int8"):
        alone = RerankerModel.load(settings, ModelSettings(device="cpu", backend=backend))
        assert alone.dtype == torch.float32
    assert RerankerModel.load(settings, ModelSettings(device="cpu")).dtype == torch.bfloat16


@pytest.mark.parametrize("requested", [1, 3, 4])
def test_reranker_max_tokens_below_what_a_pair_needs_is_refused(
    tiny_reranker_path: Path, requested: int
) -> None:
    """3 cut every pair to [CLS] [SEP] [SEP] (all scores equal); 1 ran pairs whole, above it."""
    settings = RerankerSettings(reranker=str(tiny_reranker_path), reranker_max_tokens=requested)
    with pytest.raises(ModelLoadError) as refused:
        RerankerModel.load(settings, ModelSettings(device="cpu"))
    assert refused.value.message == (
        f"--reranker-max-tokens (EMBEDSERVE_RERANKER_MAX_TOKENS) {requested} leaves no room "
        "for a query and a document beside the reranker's 3 special tokens; it takes at least 5"
    )


def test_the_smallest_reranker_max_tokens_reads_a_token_of_each_text(
    start_server: Any, minilm_model: Any, tiny_reranker_path: Path
) -> None:
    server = start_server(
        loaded=minilm_model, reranker=str(tiny_reranker_path), reranker_max_tokens=5
    )
    documents = ["rockets fly", "bread bakes", "orbit " * 50]
    reply = rerank(server.target, query=QUERY, documents=documents)
    assert len({round(r.score, 6) for r in reply.results}) == len(documents)
    with EmbedClient(server.target) as client:
        assert client.model_info().reranker.max_tokens == 5
    # Below it the server does not get to SERVING (serve exits 2 with the message).
    refused = start_server(
        loaded=minilm_model, reranker=str(tiny_reranker_path), reranker_max_tokens=4, wait=False
    )
    with pytest.raises(ModelLoadError, match=r"^--reranker-max-tokens .* at least 5$"):
        refused.wait_ready()


def test_the_activation_and_prompt_crossencoder_saves_are_applied(
    start_server, minilm_model: Any, tmp_path: Path, minilm_path: Path
) -> None:
    """CrossEncoder.save writes its activation and prompts to
    config_sentence_transformers.json, not config.json: an identity model was scored with
    a sigmoid, and the default prompt was not put before the query."""
    import torch
    from sentence_transformers import CrossEncoder

    built = build_tiny_reranker(tmp_path / "built", minilm_path)
    saved = tmp_path / "saved"
    CrossEncoder(
        str(built),
        device="cpu",
        activation_fn=torch.nn.Identity(),
        prompts={"relevance": "Judge relevance: "},
        default_prompt_name="relevance",
    ).save(str(saved))
    assert "sentence_transformers" not in json.loads((saved / "config.json").read_text())
    server = start_server(loaded=minilm_model, reranker=str(saved))
    expected = cross_encoder_scores(saved, [(QUERY, d) for d in DOCUMENTS])
    bare = CrossEncoder(str(saved), device="cpu").predict(
        [(QUERY, d) for d in DOCUMENTS], batch_size=2, prompt=""
    )
    assert np.abs(expected - bare).max() > 1e-4  # the prompt changes the scores
    assert expected.min() < 0 or expected.max() > 1  # identity: logits
    reply = rerank(server.target, query=QUERY, documents=DOCUMENTS)
    got = {r.index: r.score for r in reply.results}
    np.testing.assert_allclose([got[i] for i in range(len(DOCUMENTS))], expected, atol=2e-6)


def test_reranker_max_tokens_leaves_room_for_the_query_prompt(
    tmp_path: Path, minilm_path: Path
) -> None:
    """Counting the special tokens alone, every query was cut away beside the prompt and
    each document scored alike whatever the query."""
    from sentence_transformers import CrossEncoder

    built = build_tiny_reranker(tmp_path / "built", minilm_path)
    saved = tmp_path / "saved"
    CrossEncoder(
        str(built), device="cpu", prompts={"q": "search query: "}, default_prompt_name="q"
    ).save(str(saved))
    for tokens in (5, 7):  # BERT's 3 special tokens, + the prompt's 3, + one of each text
        settings = RerankerSettings(reranker=str(saved), reranker_max_tokens=tokens)
        with pytest.raises(ModelLoadError, match="beside the reranker's 6 special and prompt"):
            RerankerModel.load(settings, ModelSettings(device="cpu"))
    settings = RerankerSettings(reranker=str(saved), reranker_max_tokens=8)
    assert RerankerModel.load(settings, ModelSettings(device="cpu")).spec.max_tokens == 8


def test_many_documents_are_read_in_slices_with_the_same_scores(
    reranker_server: Any, tiny_reranker_path: Path
) -> None:
    """More documents than one tokenizer job takes (TOKENIZE_SLICE): each scores as alone,
    duplicates are read once, and an error names the document by its place in the list."""
    from embedserve.server.reranking import TOKENIZE_SLICE

    documents = [f"document {i % 170} about {'rockets' if i % 3 else 'bread'}" for i in range(300)]
    assert len(set(documents)) > TOKENIZE_SLICE
    reply = rerank(reranker_server.target, query=QUERY, documents=documents)
    expected = cross_encoder_scores(tiny_reranker_path, [(QUERY, d) for d in documents])
    got = {r.index: r.score for r in reply.results}
    np.testing.assert_allclose([got[i] for i in range(len(documents))], expected, atol=2e-6)
    documents[250] = "orbit " * 700  # past 512 tokens, in the second slice
    with pytest.raises(grpc.RpcError) as refused:
        rerank(reranker_server.target, query=QUERY, documents=documents, overflow=3)
    assert "documents[250] with the query is" in (refused.value.details() or "")


def test_a_rerank_whose_deadline_passed_tokenizes_no_further(reranker_server: Any) -> None:
    """Checked before each slice: a call given up no longer holds the tokenizer thread,
    which every Embed shares, for the rest of its documents."""
    import time

    from embedserve.server.errors import DeadlineExpired
    from embedserve.server.reranking import RerankParams

    reranker = reranker_server.server.embedding_service._reranker
    passed = time.monotonic()
    with pytest.raises(DeadlineExpired, match="deadline expired while tokenizing"):
        reranker_server.run(reranker.rerank(QUERY, DOCUMENTS, RerankParams(), deadline=passed))


def test_command_line_names_a_refused_document_by_its_place_in_the_file(
    reranker_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sent --batch-size at a time, a refused document was named by its place in its
    request: documents[1] for the fifth."""
    from embedserve.client.cli import main as cli_main

    short = [d for d in DOCUMENTS if len(d) < 100]
    documents = [*short, "word " * 5000, short[0]]
    command = ["rerank", QUERY, *documents, "--overflow", "error", "--batch-size", "3"]
    assert cli_main([*command, "--target", reranker_server.target]) == 1
    err = capsys.readouterr().err
    assert err.startswith("embedserve: INVALID_ARGUMENT: documents[4] "), err
