"""What the console script writes and the flags it checks, against a real server: exact
vectors in exports, outputs replaced whole (through links, into FIFOs, kept when a write
fails), checkpoints that are no checkpoints, sizes and counts refused before any call, and
inputs larger than one request."""

from __future__ import annotations

import io
import json
import os
import resource
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli import CLI, cli_env, cli_server

from embedserve.client import EmbedClient
from embedserve.client._connection import DEFAULT_TARGET
from embedserve.client.cli import build_parser
from embedserve.client.cli import main as cli_main

TINY = [1e-8, 2e-8, 3e-8, 4e-8]  # below 5e-8: rounded to 7 decimals, all zeros
TEXTS = [f"sentence number {i} about tea" for i in range(30)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with cli_server(tmp_path_factory.mktemp("data"), ready_s=120, stop_s=30) as target:
        with EmbedClient(target) as client:
            client.create_collection("texts")
            client.ingest("texts", [{"id": f"t{i}", "text": t} for i, t in enumerate(TEXTS)])
        yield target


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``embedserve ARGS`` in this process: exit code, stdout, stderr."""
    try:
        code = cli_main(list(args))
    except SystemExit as exc:  # argparse's refusals
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stored_vectors(target: str, collection: str) -> dict[str, np.ndarray]:
    with EmbedClient(target) as client:
        documents = client.scroll_iter(collection, with_vectors=True)
        return {d.id: np.asarray(d.vector, dtype=np.float32) for d in documents}


@pytest.mark.parametrize("distance", ["dot", "euclid"])
def test_export_then_ingest_gives_the_same_float32_bits(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], distance: str
) -> None:
    rng = np.random.default_rng(7)
    scales = np.exp(rng.uniform(-30, 3, size=(40, 1)))
    vectors = [TINY, *(rng.standard_normal((40, 4)) * scales).astype(np.float32).tolist()]
    with EmbedClient(served) as client:
        client.create_collection(f"exact_{distance}", dimensions=4, distance=distance)
        client.upsert(
            f"exact_{distance}", [{"id": f"v{i}", "vector": v} for i, v in enumerate(vectors)]
        )
    backup = tmp_path / "exact.jsonl"
    code, _, err = cli(capsys, "export", f"exact_{distance}", "-o", str(backup), "--target", served)
    assert code == 0, err
    code, _, err = cli(capsys, "ingest", str(backup), "-c", f"copy_{distance}", "--target", served)
    assert code == 0, err
    before = stored_vectors(served, f"exact_{distance}")
    after = stored_vectors(served, f"copy_{distance}")
    assert before.keys() == after.keys() and len(before) == len(vectors)
    for doc_id, vector in before.items():
        assert vector.tobytes() == after[doc_id].tobytes(), doc_id
    assert after["v0"].tolist() == np.float32(TINY).tolist()
    # get --vectors prints them as exactly too
    code, out, err = cli(capsys, "get", f"exact_{distance}", "v0", "--vectors", "--target", served)
    assert code == 0, err
    assert np.float32(json.loads(out)["vector"]).tobytes() == np.float32(TINY).tobytes()


def test_text_embeddings_survive_export_and_ingest_bit_for_bit(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "texts.jsonl"
    assert cli(capsys, "export", "texts", "-o", str(backup), "--target", served)[0] == 0
    assert cli(capsys, "ingest", str(backup), "-c", "texts_copy", "--target", served)[0] == 0
    before, after = stored_vectors(served, "texts"), stored_vectors(served, "texts_copy")
    assert {i: v.tobytes() for i, v in before.items()} == {i: v.tobytes() for i, v in after.items()}


def test_export_through_a_symlink_writes_its_target_and_keeps_the_link(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "real" / "backup.jsonl"
    target.parent.mkdir()
    target.write_text("yesterday\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    code, _, err = cli(capsys, "export", "texts", "-o", str(link), "--target", served)
    assert code == 0, err
    assert link.is_symlink() and link.resolve() == target
    lines = target.read_text().splitlines()
    assert len(lines) == len(TEXTS) and json.loads(lines[0])["id"].startswith("t")
    assert [p.name for p in target.parent.iterdir()] == ["backup.jsonl"]  # nothing left beside


def test_an_export_replacing_a_private_file_keeps_it_private(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file put in its place was made with the umask's mode (0644): every export of
    private payloads over a 0600 backup became readable by all."""
    backup = tmp_path / "private.jsonl"
    backup.write_text("yesterday\n")
    backup.chmod(0o600)
    code, _, err = cli(capsys, "export", "texts", "-o", str(backup), "--target", served)
    assert code == 0, err
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert len(backup.read_text().splitlines()) == len(TEXTS)
    fresh = tmp_path / "fresh.jsonl"  # a new file: the umask's mode, as open() makes it
    assert cli(capsys, "export", "texts", "-o", str(fresh), "--target", served)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_export_into_a_fifo_reaches_its_reader(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, err = cli(capsys, "export", "texts", "-o", str(fifo), "--target", served)
    assert code == 0, err
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    assert received and len(received[0].decode().splitlines()) == len(TEXTS)


def run_limited(args: list[str], cwd: Path, max_bytes: int) -> subprocess.CompletedProcess[str]:
    """The console script unable to write files larger than ``max_bytes`` (the interpreter
    ignores SIGXFSZ, so a write past it fails with EFBIG, as on a full disk)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=300,
        preexec_fn=limit,
    )


@pytest.mark.parametrize(
    ("output", "args"),
    [
        ("x.npy", ["embed", "-o", "x.npy", *TEXTS]),
        ("x.jsonl", ["embed", "-o", "x.jsonl", *TEXTS]),
        ("m.csv", ["similarity", "texts.txt", "--matrix", "m.csv"]),
        ("co.csv", ["map", "texts.txt", "--method", "pca", "--coords", "co.csv"]),
        ("map.png", ["map", "texts.txt", "--method", "pca", "-o", "map.png"]),
        ("map.html", ["map", "texts.txt", "--method", "pca", "--html", "map.html"]),
    ],
)
def test_a_write_that_fails_keeps_the_earlier_file_and_names_it(
    served: str, tmp_path: Path, output: str, args: list[str]
) -> None:
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n")
    earlier = tmp_path / output
    earlier.write_bytes(b"the earlier file\n")
    result = run_limited([*args, "--target", served], tmp_path, max_bytes=1000)
    assert result.returncode == 2, result.stderr
    assert f"embedserve: cannot write {output}: File too large" in result.stderr
    assert earlier.read_bytes() == b"the earlier file\n"
    assert not (tmp_path / f"{output}.partial").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "not JSON"),
        ('{"acknowledged": 2}', "it has no 'last_id'"),
        ("[1, 2]", "a JSON object expected, got list"),
        ('{"acknowledged": "2x", "last_id": "a"}', "'acknowledged' must be an integer"),
        ('{"acknowledged": 2, "last_id": 5}', "'last_id' must be a string"),
        ('{"acknowledged": 1, "last_id": "a", "options": []}', "'options' must be an object"),
    ],
)
def test_a_checkpoint_that_is_none_is_named_with_restart(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "a text"}) + "\n")
    checkpoint = tmp_path / "docs.jsonl.progress"
    checkpoint.write_text(content)
    code, _, err = cli(capsys, "ingest", str(source), "-c", "checked", "--target", served)
    assert code == 2, err
    [line] = err.splitlines()
    assert line.startswith(f"embedserve: {checkpoint} is not a checkpoint of ingest")
    assert problem in line and "--restart" in line
    restarted = cli(capsys, "ingest", str(source), "-c", "checked", "--restart", "--target", served)
    assert restarted[0] == 0, restarted[2]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["ingest", "{docs}", "-c", "bs0_ingest", "--batch-size", "0"], "--batch-size"),
        (["reembed", "texts", "--to", "bs0_reembed", "--batch-size", "0"], "--batch-size"),
        (["embed", "a text", "--batch-size", "-3"], "--batch-size"),
        (["export", "texts", "-o", "{docs}.out", "--page-size", "-1"], "--page-size"),
        (["export", "texts", "-o", "{docs}.out", "--page-size", "0"], "--page-size"),
        (["duplicates", "texts", "--max-pairs", "-1"], "--max-pairs"),
        (["duplicates", "texts", "--max-neighbors", "0"], "--max-neighbors"),
        (["similarity", "{docs}", "--top-k", "5000000000"], "--top-k"),
        (["ingest", "{docs}", "-c", "bs0_passages", "--passage-tokens", "0"], "--passage-tokens"),
    ],
)
def test_counts_and_sizes_below_one_are_refused_by_their_flag_before_any_call(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": "a text"}) + "\n")
    given = [a.format(docs=docs) for a in args]
    code, _, err = cli(capsys, *given, "--target", served)
    assert code == 2
    assert f"argument {flag}: must be from 1 to " in err
    with EmbedClient(served) as client:
        assert not {a for a in given if a.startswith("bs0")} & set(client.list_collections())
    assert not Path(f"{docs}.out").exists()


def test_the_cosine_matrix_goes_to_standard_output_for_a_dash(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """--matrix - wrote a file named '-', and --matrix '' printed pairs instead."""
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS[:4]) + "\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "similarity", str(texts), "--matrix", "-", "--target", served)
    assert code == 0, err
    assert cli(capsys, "similarity", str(texts), "--matrix", "m.csv", "--target", served)[0] == 0
    assert out == (tmp_path / "m.csv").read_bytes().decode()
    assert out.startswith(",line 1,line 2,") and not (tmp_path / "-").exists()
    assert "4 x 4 cosine matrix -> standard output" in err
    code, _, err = cli(capsys, "similarity", str(texts), "--matrix", "", "--target", served)
    assert code == 2
    assert "argument --matrix: a file name expected" in err
    code, _, err = cli(capsys, "export", "texts", "-o", "", "--target", served)
    assert code == 2
    assert "argument --output/-o: a file name expected" in err  # was "cannot write : Is a dir"


def test_a_page_size_past_the_servers_page_is_refused_by_its_flag(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server named only "limit must be in [1, 10000]"."""
    out = tmp_path / "all.jsonl"
    code, _, err = cli(capsys, "export", "texts", "-o", str(out), "--page-size", "10001")
    assert code == 2
    assert "argument --page-size: must be from 1 to 10000, got 10001" in err
    assert not out.exists()


def test_collections_create_sets_hnsw_ef(served: str, capsys: pytest.CaptureFixture[str]) -> None:
    target = ["--target", served]
    code, out, err = cli(capsys, "collections", "create", "ef", "--hnsw-ef", "77", *target)
    assert code == 0, err
    assert json.loads(out)["config"]["hnswEf"] == 77
    with EmbedClient(served) as client:
        assert client.get_collection("ef").config.hnsw_ef == 77
    code, _, err = cli(capsys, "collections", "create", "ef_bad", "--hnsw-ef", "-5", *target)
    assert code == 2 and "hnsw_ef must be a whole number" in err
    with EmbedClient(served) as client:
        assert "ef_bad" not in client.list_collections()


@pytest.mark.parametrize("flags", [["--quantization", "binary"], ["--dimensions", "8", "--bm25"]])
def test_collections_update_refuses_what_only_create_sets(
    served: str, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    code, _, err = cli(capsys, "collections", "update", "texts", *flags, "--target", served)
    assert code == 2
    [line] = err.splitlines()
    named = ", ".join(f for f in flags if f.startswith("--"))
    assert line.startswith(f"embedserve: collections update cannot change {named}:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "c8", "--to", "x"], "collections create takes no --to"),
        (["list", "extra"], "collections list takes no NAME, got 'extra'"),
        (
            ["get", "texts", "--index", "a:keyword", "--bm25"],
            "collections get takes no --index, --bm25",
        ),
        (
            ["alias", "a1", "--to", "texts", "--hnsw-ef", "9"],
            "collections alias takes no --hnsw-ef",
        ),
        (["delete", "texts", "--dimensions", "8"], "collections delete takes no --dimensions"),
    ],
)
def test_collections_refuses_what_its_action_does_not_read(
    served: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """They were ignored: `create c8 --to x` made c8 and no alias."""
    code, _, err = cli(capsys, "collections", *args, "--target", served)
    assert code == 2
    assert err.splitlines() == [f"embedserve: {message}"]
    with EmbedClient(served) as client:
        assert "c8" not in client.list_collections()
        assert client.count("texts") == len(TEXTS)


def test_tokenize_more_texts_than_one_request_takes_keeps_their_order(
    served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"text {i} " + "word " * (i % 5) for i in range(2100)]
    code, out, err = cli(capsys, "tokenize", *texts, "--target", served)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    with EmbedClient(served) as client:
        expected = [*client.tokenize(texts[:1050]).results, *client.tokenize(texts[1050:]).results]
    assert [r["ids"] for r in rows] == [list(e.ids) for e in expected]


def test_rerank_of_a_file_larger_than_one_request(
    reranker_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = ("tea", "coffee", "cocoa")
    documents = [f"document {i} on " + " ".join([topics[i % 3]] * (i % 4 + 1)) for i in range(2100)]
    file = tmp_path / "docs.txt"
    file.write_text("\n".join(documents) + "\n")
    target = ["--target", reranker_server.target]
    code, out, err = cli(capsys, "rerank", "coffee", "--file", str(file), "--json", *target)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(len(documents)))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    with EmbedClient(reranker_server.target) as client:
        alone = {r.index: r.score for r in client.rerank("coffee", documents[:1000])}
    for row in rows:
        assert row["text"] == documents[row["index"]]
        if row["index"] in alone:
            assert row["score"] == pytest.approx(alone[row["index"]], abs=1e-5)
    code, out, _ = cli(capsys, "rerank", "coffee", "--file", str(file), "--top-n", "3", *target)
    assert code == 0
    assert [int(line.split("\t")[1]) for line in out.splitlines()] == [r["index"] for r in rows[:3]]
    # Requests of 700 (under a server's lower max_inputs_per_request): the same ranking.
    smaller = ["--top-n", "5", "--batch-size", "700", "--json"]
    code, out, err = cli(capsys, "rerank", "coffee", "--file", str(file), *smaller, *target)
    assert code == 0, err
    assert [json.loads(line)["index"] for line in out.splitlines()] == [
        r["index"] for r in rows[:5]
    ]


@pytest.mark.timeout(120)  # reading the pipe twice waited for a writer that never came
def test_ingest_reads_a_pipe_named_by_its_path_once(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``<(command)`` or ``/dev/stdin``: the documents are not read first to count them (that
    read used them up, and ingest wrote none), nor can the pipe be read again to resume."""
    pipe = tmp_path / "documents"
    lines = "".join(json.dumps({"id": f"p{i}", "text": f"piped {i}"}) + "\n" for i in range(3))

    def feed() -> None:
        with open(pipe, "w") as writer:
            writer.write(lines)

    os.mkfifo(pipe)
    writer = threading.Thread(target=feed)
    writer.start()
    code, _, err = cli(capsys, "ingest", str(pipe), "-c", "piped", "--target", served)
    writer.join()
    assert code == 0, err
    assert "ingested 3 documents" in err
    assert not Path(f"{pipe}.progress").exists()
    with EmbedClient(served) as client:
        assert client.count("piped") == 3

    args = ["ingest", str(pipe), "-c", "piped", "--checkpoint", str(tmp_path / "p.progress")]
    code, _, err = cli(capsys, *args, "--target", served)
    assert code == 2
    assert f"documents from {pipe} (read once) cannot be resumed" in err


def test_ingest_from_stdin_refuses_a_checkpoint(
    served: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"id": "a", "text": "a"}) + "\n"))
    checkpoint = tmp_path / "stdin.progress"
    args = ["ingest", "-", "-c", "stdin_docs", "--checkpoint", str(checkpoint)]
    code, _, err = cli(capsys, *args, "--target", served)
    assert code == 2
    assert "--checkpoint needs a FILE" in err
    with EmbedClient(served) as client:
        assert "stdin_docs" not in client.list_collections()


def test_ingest_of_a_numpy_export_says_what_it_reads(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said 'X.npy line 1 is not UTF-8 text (byte 0x93 at character 1)'."""
    vectors = tmp_path / "texts.NPY"
    assert cli(capsys, "export", "texts", "-o", str(vectors), "--target", served)[0] == 0
    code, _, err = cli(capsys, "ingest", str(vectors), "-c", "from_npy", "--target", served)
    assert code == 2
    assert err.startswith(f"embedserve: {vectors} is a numpy array (an export's vectors")
    with EmbedClient(served) as client:
        assert "from_npy" not in client.list_collections()


def test_file_extensions_are_read_in_any_case(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upper = tmp_path / "UP.CSV"
    upper.write_text("id,text,topic\nc1,green tea,tea\nc2,black coffee,coffee\n")
    code, _, err = cli(capsys, "ingest", str(upper), "-c", "upper_csv", "--target", served)
    assert code == 0, err
    with EmbedClient(served) as client:
        assert {d.id: d.payload for d in client.get("upper_csv", ["c1", "c2"])} == {
            "c1": {"topic": "tea"},
            "c2": {"topic": "coffee"},
        }
    matrix = tmp_path / "X.NPY"
    code, _, err = cli(capsys, "export", "upper_csv", "-o", str(matrix), "--target", served)
    assert code == 0, err
    assert np.load(matrix).shape == (2, 384)
    assert len((tmp_path / "X.ids.jsonl").read_text().splitlines()) == 2
    code, _, err = cli(capsys, "embed", "a text", "-o", str(tmp_path / "E.NPY"), "--target", served)
    assert code == 0, err
    assert np.load(tmp_path / "E.NPY").shape == (1, 384)


def test_an_empty_target_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSERVE_TARGET", "")
    assert build_parser().parse_args(["health"]).target == DEFAULT_TARGET


@pytest.mark.parametrize("given", ["CERT", "KEY"])
def test_half_a_client_certificate_pair_is_refused(
    served: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given: str,
) -> None:
    pem = tmp_path / "half.pem"
    pem.write_text("not used\n")
    monkeypatch.setenv(f"EMBEDSERVE_TLS_CLIENT_{given}", str(pem))
    code, _, err = cli(capsys, "health", "--target", served)
    assert code == 2
    missing = "KEY" if given == "CERT" else "CERT"
    assert f"EMBEDSERVE_TLS_CLIENT_{given} is set without EMBEDSERVE_TLS_CLIENT_{missing}" in err


@pytest.mark.parametrize("name", ["backup.csv", "BACKUP.CSV"])
def test_export_refuses_a_csv_output_naming_what_it_writes(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """It wrote JSONL into the .csv file, which ingest then read as CSV and refused."""
    output = tmp_path / name
    code, _, err = cli(capsys, "export", "texts", "-o", str(output), "--target", served)
    assert code == 2
    assert f"--output {output}: export writes JSONL (FILE.jsonl, or '-') or vectors" in err
    assert list(tmp_path.iterdir()) == []  # nothing written, no settings file either
