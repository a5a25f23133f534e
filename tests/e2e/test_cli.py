"""The console script against a real server subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from running_server import free_port

from embedserve.client import EmbedClient

CLI = [sys.executable, "-m", "embedserve.server.cli"]


def cli_env() -> dict[str, str]:
    roots = ["server", "connectors", "clients/python"]
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, HF_HUB_OFFLINE="1", EMBEDSERVE_HTTP_PORT="0")
    env["EMBEDSERVE_DTYPE"] = "float32"  # vectors are compared with float32 references
    env["PYTHONPATH"] = os.pathsep.join(str(repo / r) for r in roots)
    return env


@contextlib.contextmanager
def cli_server(
    data_dir: Path,
    settings: Mapping[str, str] | None = None,
    *,
    args: Sequence[str] = (),
    ready_s: float = 300,
    stop_s: float = 60,
) -> Iterator[str]:
    """`embedserve serve` with the packaged MiniLM on a free port, serving within
    ``ready_s``; ``settings`` are EMBEDSERVE_* variables. Yields its target; on leaving, the
    server must stop cleanly within ``stop_s``."""
    port = free_port()
    env = cli_env() | {"EMBEDSERVE_MODEL": "minilm", "EMBEDSERVE_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *args], env=env | dict(settings or {})
    )
    target = f"127.0.0.1:{port}"
    try:
        with EmbedClient(target) as client:
            client.wait_until_serving(timeout=ready_s)
        yield target
    finally:
        process.terminate()
        assert process.wait(stop_s) == 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = {"EMBEDSERVE_MAX_BATCH_SIZE": "32"}
    with cli_server(tmp_path_factory.mktemp("data"), settings, ready_s=120, stop_s=30) as target:
        with EmbedClient(target) as client:
            assert client.model_info().batching.max_batch_size == 32  # env var reached the server
        yield target


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, env=cli_env(), timeout=120
    )


def test_embed_arguments_to_jsonl(served: str, sentence_transformer) -> None:
    result = run_cli("embed", "--target", served, "first text", "second text")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["first text", "second text"]
    reference = sentence_transformer.encode(
        ["first text", "second text"], normalize_embeddings=True
    )
    assert np.abs(np.array([r["embedding"] for r in rows]) - reference).max() < 1e-5


def test_embed_stdin_to_npy_with_dimensions(served: str, tmp_path: Path) -> None:
    out = tmp_path / "vectors.npy"
    result = run_cli(
        "embed",
        "--target",
        served,
        "--dimensions",
        "32",
        "-o",
        str(out),
        stdin="one\ntwo\n\nthree\n",
    )
    assert result.returncode == 0, result.stderr
    vectors = np.load(out)
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_in_fewer_bits(served: str, tmp_path: Path) -> None:
    texts = ["first text", "second text"]
    runs = {
        precision: run_cli("embed", "--target", served, "--precision", precision, *texts)
        for precision in ("float32", "ubinary")
    }
    rows = {}
    for precision, result in runs.items():
        assert result.returncode == 0, result.stderr
        rows[precision] = [json.loads(line)["embedding"] for line in result.stdout.splitlines()]
    floats = np.array(rows["float32"], dtype=np.float32)
    assert rows["ubinary"] == np.packbits(floats > 0, axis=1).tolist()
    out = tmp_path / "signed.npy"
    result = run_cli("embed", "--target", served, "--precision", "int8", "-o", str(out), *texts)
    assert result.returncode == 0, result.stderr
    signed = np.load(out)
    assert signed.dtype == np.int8 and signed.shape == (2, 384)
    assert (np.abs(signed.astype(int)).max(axis=1) == 127).all()


def test_info_and_tokenize(served: str) -> None:
    info = run_cli("info", "--target", served)
    assert info.returncode == 0, info.stderr
    parsed = json.loads(info.stdout)
    assert parsed["modelId"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert parsed["dimensions"] == 384 and parsed["maxTokens"] == 256
    health = run_cli("health", "--target", served)
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
    tokens = run_cli("tokenize", "--target", served, "Hello world")
    assert json.loads(tokens.stdout)["tokens"] == ["[CLS]", "hello", "world", "[SEP]"]


def test_client_errors_are_one_line_not_a_traceback(served: str) -> None:
    result = run_cli("embed", "--target", served, "--dimensions", "0", "text")
    assert result.returncode == 1
    assert result.stderr.startswith("embedserve: INVALID_ARGUMENT: options.dimensions")
    assert "Traceback" not in result.stderr


def test_a_reader_that_leaves_early_ends_the_command_quietly(served: str) -> None:
    """`embedserve embed ... | head -1`: a closed stdout is SIGPIPE's exit, not an error."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        result = subprocess.run(
            [*CLI, "embed", "--target", served, "one", "two"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (128 + 13, "")


def test_unavailable_model_names_it_and_the_offline_alternative() -> None:
    result = run_cli("serve", "--port", str(free_port()), "--model", "acme/no-such-model")
    assert result.returncode == 2
    assert "acme/no-such-model" in result.stderr
    assert "--model minilm" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_that_is_taken_is_named_by_its_flag() -> None:
    """Each was a traceback (gRPC's "Failed to bind", an OSError from HTTP or metrics),
    and the HTTP one also "Event loop is closed" from the gRPC server left behind."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flags, expected in (
            (["--port", str(port)], f"cannot listen for gRPC on 127.0.0.1:{port} (--host, --port)"),
            (
                ["--port", str(free_port()), "--http-port", str(port)],
                f"cannot listen for HTTP on 127.0.0.1:{port} (--host, --http-port): Address",
            ),
            (
                ["--port", str(free_port()), "--metrics-port", str(port)],
                f"cannot listen for metrics on 127.0.0.1:{port} (--host, --metrics-port): Address",
            ),
        ):
            result = run_cli("serve", "--model", "minilm", *flags)
            assert result.returncode == 2, result.stderr
            assert f"embedserve: {expected}" in result.stderr
            assert "Traceback" not in result.stderr and "Event loop" not in result.stderr


def write_jsonl(path: Path, start: int, stop: int) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for i in range(start, stop):
            topic = ["space", "food", "sport"][i % 3]
            text = {
                "space": "a rocket flew to the moon",
                "food": "fresh bread from the oven",
                "sport": "the team scored a goal",
            }[topic]
            handle.write(
                json.dumps({"id": f"d{i}", "text": f"{text} {i}", "payload": {"topic": topic}})
                + "\n"
            )


def test_ingest_resumes_search_recommend_and_collections(served: str, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    write_jsonl(source, 0, 60)
    first = run_cli("ingest", str(source), "-c", "cli", "--target", served, "--batch-size", "16")
    assert first.returncode == 0, first.stderr
    assert "created collection 'cli'" in first.stderr and "ingested 60 documents" in first.stderr
    assert "docs/s" in first.stderr
    write_jsonl(source, 60, 90)  # the producer appended more; the re-run sends only those
    second = run_cli("ingest", str(source), "-c", "cli", "--target", served)
    assert second.returncode == 0, second.stderr
    assert "resuming after 60 acknowledged documents" in second.stderr
    assert "ingested 30 documents" in second.stderr
    assert json.loads((tmp_path / "docs.jsonl.progress").read_text())["acknowledged"] == 90

    found = run_cli("search", "cli", "rocket to the moon", "--limit", "3", "--target", served)
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert [h["payload"]["topic"] for h in hits] == ["space"] * 3
    liked = run_cli("recommend", "cli", "-p", "d1", "-n", "d0", "--limit", "3", "--target", served)
    assert {json.loads(line)["payload"]["topic"] for line in liked.stdout.splitlines()} == {"food"}

    rows = tmp_path / "more.csv"
    rows.write_text('id,text,topic\nc1,"a goal in the match",sport\nc2,"rye bread",food\n')
    assert run_cli("ingest", str(rows), "-c", "cli", "--target", served).returncode == 0
    info = json.loads(run_cli("collections", "get", "cli", "--target", served).stdout)
    assert int(info["pointsCount"]) == 92
    listed = run_cli("collections", "--target", served).stdout.split()
    assert "cli" in listed
    assert run_cli("collections", "delete", "cli", "--target", served).returncode == 0
    missing = run_cli("collections", "get", "cli", "--target", served)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr

    options = ["--quantization", "scalar_int8", "--full-scan-threshold-kb", "20000"]
    made = run_cli("collections", "create", "tuned", *options, "--target", served)
    assert made.returncode == 0, made.stderr
    config = json.loads(made.stdout)["config"]
    assert config["quantization"] == "QUANTIZATION_SCALAR_INT8"
    assert config["fullScanThresholdKb"] == 20000

    compact = ["--quantization", "binary", "--vector-datatype", "float16"]
    made = run_cli("collections", "create", "bits", *compact, "--target", served)
    config = json.loads(made.stdout)["config"]
    assert config["quantization"] == "QUANTIZATION_BINARY"
    assert config["vectorDatatype"] == "VECTOR_DATATYPE_FLOAT16"
    assert run_cli("ingest", str(rows), "-c", "bits", "--target", served).returncode == 0
    found = run_cli("search", "bits", "bread", "--oversampling", "5", "--target", served)
    assert json.loads(found.stdout.splitlines()[0])["id"] == "c2", found.stderr
    refused = run_cli("search", "tuned", "bread", "--oversampling", "0.5", "--target", served)
    assert refused.returncode == 1 and "oversampling must be from 1 to 100" in refused.stderr


def test_ingest_splits_long_texts_into_passages_and_resumes(served: str, tmp_path: Path) -> None:
    source = tmp_path / "guides.jsonl"
    long = "The ferry leaves the harbour at dawn and returns at dusk. " * 40
    rows = [
        {"id": "ferry", "text": long + "Bring a warm coat for the crossing."},
        {"id": "bread", "text": "Rye bread needs a sour starter. " * 40},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows[:1]))
    split = ["--passage-tokens", "48", "--passage-overlap", "4", "--store-text"]
    first = run_cli("ingest", str(source), "-c", "guides", *split, "--target", served)
    assert first.returncode == 0, first.stderr
    assert "ingested 1 documents" in first.stderr
    info = json.loads(run_cli("collections", "get", "guides", "--target", served).stdout)
    assert info["config"]["payloadIndexes"] == {"doc_id": "PAYLOAD_INDEX_KIND_KEYWORD"}
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = run_cli("ingest", str(source), "-c", "guides", *split, "--target", served)
    assert "resuming after 1 acknowledged documents" in second.stderr, second.stderr
    grouped = ["search", "guides", "a warm coat", "--group-by", "doc_id", "--group-size", "1"]
    groups = [
        json.loads(line) for line in run_cli(*grouped, "--target", served).stdout.splitlines()
    ]
    assert [g["key"] for g in groups] == ["ferry", "bread"]
    best = groups[0]["hits"][0]
    assert best["payload"]["passage"] == best["payload"]["passages"] - 1 > 3
    assert best["payload"]["text"].endswith("Bring a warm coat for the crossing.")


def test_keyword_and_hybrid_search_from_the_shell(served: str, tmp_path: Path) -> None:
    rows = tmp_path / "codes.csv"
    rows.write_text(
        "id,text\nk1,part QX-4411 is out of stock\nk2,the warehouse ships parts daily\n"
        "k3,a recipe for apple pie\n"
    )
    made = run_cli("ingest", str(rows), "-c", "codes", "--bm25", "--target", served)
    assert made.returncode == 0, made.stderr
    info = json.loads(run_cli("collections", "get", "codes", "--target", served).stdout)
    assert info["config"]["bm25"] is True
    by_words = run_cli("search", "codes", "QX-4411 parts", "--mode", "keyword", "--target", served)
    assert [json.loads(line)["id"] for line in by_words.stdout.splitlines()] == ["k1", "k2"]
    fused = run_cli("search", "codes", "QX-4411", "--mode", "hybrid", "--target", served)
    assert json.loads(fused.stdout.splitlines()[0])["id"] == "k1"
    diverse = ["search", "codes", "parts", "--diversity", "0.9", "--limit", "2"]
    shown = run_cli(*diverse, "--target", served)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 2
    picked = ["search", "codes", "QX", "--mode", "hybrid", "--keyword-weight", "2"]
    shown = run_cli(*picked, "--payload-key", "missing", "--limit", "1", "--target", served)
    assert shown.returncode == 0, shown.stderr
    hit = json.loads(shown.stdout)
    # Above 2 / 60, the most an unweighted fusion gives: the keyword list counts double.
    assert (hit["id"], hit["payload"]) == ("k1", {}) and hit["score"] > 2 / 60
    out_of_range = run_cli("search", "codes", "parts", "--diversity", "3", "--target", served)
    assert out_of_range.returncode == 1 and "diversity must be a number from 0 to 1" in (
        out_of_range.stderr
    )
    shelf = ["collections", "create", "shelf", "--index", "kind:keyword"]
    assert run_cli(*shelf, "--target", served).returncode == 0
    stock = tmp_path / "stock.csv"
    stock.write_text("id,text,kind\ns1,oak table,wood\ns2,pine shelf,wood\ns3,steel rack,metal\n")
    assert run_cli("ingest", str(stock), "-c", "shelf", "--target", served).returncode == 0
    counted = run_cli("facet", "shelf", "kind", "--target", served)
    assert [json.loads(line) for line in counted.stdout.splitlines()] == [
        {"value": "wood", "count": 2},
        {"value": "metal", "count": 1},
    ]
    grouped = ["search", "shelf", "a wooden table", "--group-by", "kind", "--group-size", "1"]
    lines = run_cli(*grouped, "--target", served).stdout.splitlines()
    groups = [json.loads(line) for line in lines]
    assert [(g["key"], [h["id"] for h in g["hits"]]) for g in groups] == [
        ("wood", ["s1"]),
        ("metal", ["s3"]),
    ]
    lone = run_cli("search", "shelf", "oak", "--group-size", "2", "--target", served)
    assert lone.returncode == 2 and "--group-size needs --group-by" in lone.stderr
    liked = ["recommend", "shelf", "-p", "s1", "--group-by", "kind", "--group-size", "2"]
    groups = [json.loads(line) for line in run_cli(*liked, "--target", served).stdout.splitlines()]
    assert {g["key"]: [h["id"] for h in g["hits"]] for g in groups} == {
        "wood": ["s2"],
        "metal": ["s3"],
    }
    plain = run_cli("collections", "create", "no-words", "--target", served)
    assert plain.returncode == 0
    refused = run_cli("search", "no-words", "QX", "--mode", "keyword", "--target", served)
    assert refused.returncode == 1 and "created without bm25" in refused.stderr


def test_ingest_resumes_after_a_failure_mid_stream_and_restart_starts_over(
    served: str, tmp_path: Path
) -> None:
    source = tmp_path / "broken.jsonl"
    write_jsonl(source, 0, 48)
    lines = source.read_text().splitlines()
    good = lines[40]
    bad = json.loads(good) | {"payload": {"_embedserve_id": "not yours"}}
    lines[40] = json.dumps(bad)
    source.write_text("\n".join(lines) + "\n")
    ingest = ["ingest", str(source), "-c", "resume", "--target", served, "--batch-size", "16"]

    first = run_cli(*ingest)
    # The third batch (documents 32-47) holds the bad one; the two before it are durable.
    assert first.returncode == 1
    assert f"{source} line 41: payload key '_embedserve_id' is reserved" in first.stderr
    assert json.loads((tmp_path / "broken.jsonl.progress").read_text())["acknowledged"] == 32

    lines[40] = good
    source.write_text("\n".join(lines) + "\n")
    second = run_cli(*ingest)
    assert second.returncode == 0, second.stderr
    assert "resuming after 32 acknowledged documents" in second.stderr
    assert "ingested 16 documents" in second.stderr

    again = run_cli(*ingest, "--restart")
    assert again.returncode == 0, again.stderr
    assert "resuming" not in again.stderr and "ingested 48 documents" in again.stderr
    with EmbedClient(served) as client:
        assert client.count("resume") == 48  # re-sent documents overwrite, never duplicate


def test_ingest_starts_over_when_its_checkpoint_is_stale(served: str, tmp_path: Path) -> None:
    """A checkpoint says what one collection acknowledged: a collection made again (or
    another one, or one on another server) gets every document, not none."""
    source = tmp_path / "kept.jsonl"
    write_jsonl(source, 0, 20)
    ingest = ["ingest", str(source), "--target", served]
    assert run_cli(*ingest, "-c", "stale").returncode == 0
    saved = json.loads((tmp_path / "kept.jsonl.progress").read_text())
    assert saved.pop("prefix_sha256")
    assert saved == {
        "acknowledged": 20,
        "last_id": "d19",
        "collection": "stale",
        "options": {"store_text": False, "split": False},
    }
    with EmbedClient(served) as client:
        for change, reason in (
            (lambda: client.delete_collection("stale"), "collection 'stale' does not exist"),
            (lambda: client.delete("stale", ids=["d19"]), "lacks its last acknowledged document"),
        ):
            change()
            again = run_cli(*ingest, "-c", "stale")
            assert again.returncode == 0, again.stderr
            assert reason in again.stderr and "ingested 20 documents" in again.stderr
            assert client.count("stale") == 20
        other = run_cli(*ingest, "-c", "other")
        assert "it is the checkpoint of collection 'stale'" in other.stderr
        assert client.count("other") == 20
    assert "resuming after 20" in run_cli(*ingest, "-c", "other").stderr
    # Run again with --store-text: the documents go again, stored with their text now.
    with_text = run_cli(*ingest, "-c", "other", "--store-text")
    assert "were written with other options" in with_text.stderr, with_text.stderr
    assert "ingested 20 documents" in with_text.stderr
    with EmbedClient(served) as client:
        assert client.get("other", ["d0"])[0].payload["text"]
    assert "resuming after 20" in run_cli(*ingest, "-c", "other", "--store-text").stderr


def test_ingest_starts_over_when_the_file_no_longer_begins_with_what_it_sent(
    served: str, tmp_path: Path
) -> None:
    """Only a file that grew at its end is continued: one replaced by another, truncated
    and written again, or edited before the point reached is sent from its first document."""
    source = tmp_path / "daily.jsonl"
    ingest = ["ingest", str(source), "-c", "daily", "--target", served, "--batch-size", "4"]

    def lines(*documents: tuple[str, str]) -> str:
        return "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in documents)

    source.write_text(lines(("a1", "monday"), ("a2", "tuesday"), ("a3", "wednesday")))
    assert run_cli(*ingest).returncode == 0
    replaced = [("b1", "one"), ("b2", "two"), ("b3", "three"), ("b4", "four")]
    source.write_text(lines(*replaced))  # as many lines and more: a count alone would skip
    again = run_cli(*ingest)
    assert again.returncode == 0, again.stderr
    assert "no longer begins with the 3 documents it acknowledged" in again.stderr
    assert "ingested 4 documents" in again.stderr
    source.write_text(lines(("a1", "monday"), ("a2", "an edited tuesday"), *replaced))
    edited = run_cli(*ingest)
    assert "no longer begins with the 4 documents" in edited.stderr, edited.stderr
    assert "ingested 6 documents" in edited.stderr
    source.write_text(lines(("c1", "cut short")))  # fewer documents than acknowledged
    assert "ingested 1 documents" in run_cli(*ingest).stderr
    with EmbedClient(served) as client:
        assert client.count("daily") == 8  # a1..a3, b1..b4, c1; a2 as edited
        assert client.get("daily", ["b1", "c1"])
    with source.open("a") as grown:  # grown at its end: continued
        grown.write(lines(("c2", "appended")))
    grown_run = run_cli(*ingest)
    assert "resuming after 1 acknowledged documents" in grown_run.stderr
    assert "ingested 1 documents" in grown_run.stderr


def test_a_bad_filter_is_named_before_any_call(served: str) -> None:
    for value, message in (
        ("{bad", "--filter: not valid JSON (Expecting property name"),
        ("[1]", "--filter: a JSON object expected"),
        ('{"must": [{"nope": 1}]}', "--filter: not a filter (Failed to parse must field"),
    ):
        for verb in (["search", "any", "text"], ["cluster", "any"], ["export", "any", "-o", "-"]):
            result = run_cli(*verb, "--filter", value, "--target", served)
            assert result.returncode == 2 and message in result.stderr, (verb, result.stderr)
            assert "NOT_FOUND" not in result.stderr  # refused before asking for "any"


def test_input_that_is_not_utf8_is_named_by_its_line(served: str, tmp_path: Path) -> None:
    """A decoder error names a position in a read buffer; the line's number helps more."""
    latin1 = "café".encode("latin-1")  # byte 0xe9: not UTF-8
    stdin = subprocess.run(
        [*CLI, "embed", "--target", served],
        input=b"fine\n" + latin1 + b"\n",
        capture_output=True,
        env=cli_env(),
        timeout=120,
    )
    assert stdin.returncode == 2
    assert b"stdin line 2 is not UTF-8 text (byte 0xe9 at character 4)" in stdin.stderr
    for name, content, message in (
        ("docs.jsonl", b'{"id": "1", "text": "' + latin1 + b'"}\n', "line 1 is not UTF-8"),
        ("rows.csv", b"id,text\n1,fine\n2," + latin1 + b"\n", "line 3 is not UTF-8"),
    ):
        (tmp_path / name).write_bytes(content)
        result = run_cli("ingest", str(tmp_path / name), "-c", "latin", "--target", served)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"one\ntwo\n" + latin1 + b"\n")
    result = run_cli("similarity", str(texts), "--target", served)
    assert result.returncode == 2
    assert f"{texts} line 3 is not UTF-8 text (byte 0xe9 at character 4)" in result.stderr


def test_json_escapes_that_are_no_text_are_named_by_file_line_and_field(
    served: str, tmp_path: Path
) -> None:
    """JSON allows a lone surrogate escape; protobuf refuses the string it becomes, and the
    CLI said only "'utf-8' codec can't encode character '\\ud800' in position 1"."""
    half = "half of a surrogate pair"
    cases = {
        "text.jsonl": ('{"id": "a", "text": "x\\ud800"}\n', "line 1: field 'text' holds \\ud800"),
        "payload.jsonl": (
            '{"id": "a", "text": "ok"}\n{"id": "b", "text": "ok", "payload": {"n": ["\\udc00"]}}\n',
            "line 2: field 'payload.n[0]' holds \\udc00",
        ),
        "rows.csv": ('id,text,payload\n1,ok,"{""k"": ""\\ud83d""}"\n', "line 2: field 'payload.k'"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        result = run_cli("ingest", str(tmp_path / name), "-c", "halves", "--target", served)
        assert result.returncode == 2, result.stderr
        assert f"{tmp_path / name} {message}" in result.stderr and half in result.stderr
    with EmbedClient(served) as client:
        assert client.count("halves") == 1  # the good line before the bad one is kept
    (tmp_path / "rows.csv").write_text("id,text,payload\n1,ok,{not json}\n")
    result = run_cli("ingest", str(tmp_path / "rows.csv"), "-c", "halves", "--target", served)
    assert f"{tmp_path / 'rows.csv'} line 2: the payload column is not JSON" in result.stderr
    result = run_cli("similarity", str(tmp_path / "text.jsonl"), "--target", served)
    assert f"{tmp_path / 'text.jsonl'} line 1: field 'text' holds \\ud800" in result.stderr
    bad_filter = '{"must": [{"match": {"key": "k", "text": "\\ud800"}}]}'
    result = run_cli("search", "halves", "q", "--filter", bad_filter, "--target", served)
    assert result.returncode == 2
    assert "--filter: field 'must[0].match.text' holds \\ud800" in result.stderr


def test_ingest_names_the_line_a_file_of_the_wrong_shape_fails_on(
    served: str, tmp_path: Path
) -> None:
    raw = tmp_path / "raw.jsonl"  # items as exported, before they were made into documents
    raw.write_text(json.dumps({"id": "a", "name": "Glide 4", "description": "A trainer."}) + "\n")
    result = run_cli("ingest", str(raw), "-c", "never", "--target", served)
    assert result.returncode == 2
    assert "line 1: a document needs an id and a text or a vector" in result.stderr
    assert "this one has id, name, description" in result.stderr
    rows = tmp_path / "rows.csv"
    rows.write_text("id,name\n1,Glide 4\n")
    result = run_cli("ingest", str(rows), "-c", "never", "--target", served)
    assert result.returncode == 2
    assert "CSV needs the columns id and text; missing text (header: id, name)" in result.stderr
    with EmbedClient(served) as client:
        assert "never" not in client.list_collections()  # nothing was created for them
    # An empty id or text, which the server refuses too, is named by its line here.
    rows.write_text('id,text\n1,"a text\nover two lines"\n2,\n')  # row 2's text is empty
    result = run_cli("ingest", str(rows), "-c", "empties", "--target", served)
    assert result.returncode == 2
    assert "line 4: a document's text must not be empty" in result.stderr
    raw.write_text('{"id": "a", "text": "fine"}\n\n{"id": "", "text": ""}\n')
    result = run_cli("ingest", str(raw), "-c", "empties", "--target", served)
    assert result.returncode == 2
    assert "line 3: a document's id and text must not be empty" in result.stderr

    # A bad line after good ones: what was sent before it is acknowledged and kept.
    source = tmp_path / "tail.jsonl"
    write_jsonl(source, 0, 20)
    source.write_text(source.read_text() + "[1, 2]\n")
    result = run_cli("ingest", str(source), "-c", "tail", "--target", served, "--batch-size", "4")
    assert result.returncode == 2
    assert "line 21: a JSON object expected, got list" in result.stderr
    assert json.loads((tmp_path / "tail.jsonl.progress").read_text())["acknowledged"] == 20
    with EmbedClient(served) as client:
        assert client.count("tail") == 20
