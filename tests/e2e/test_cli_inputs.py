"""The console script's reading of awkward input files against a real server: byte order
marks, blank first lines, values of the wrong JSON type, payloads nested too deep, vectors
without a settings file, CSV line endings and malformed options."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import CLI, cli_env, cli_server, run_cli

from embedserve.client import EmbedClient

BOM = "\ufeff"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with cli_server(tmp_path_factory.mktemp("data"), ready_s=120, stop_s=30) as target:
        yield target


def nested(levels: int) -> dict[str, Any]:
    """A payload of ``levels`` objects and arrays, itself the outermost."""
    payload: dict[str, Any] = {"leaf": [1, 2]}  # an array: one level more
    for _ in range(levels - 2):
        payload = {"a": payload}
    return payload


def jsonl(*documents: Any) -> str:
    return "".join(json.dumps(d) + "\n" for d in documents)


def ingest(served: str, path: Path, collection: str, *extra: str) -> Any:
    return run_cli("ingest", str(path), "-c", collection, "--target", served, *extra)


def test_a_payload_nested_too_deep_is_named_by_its_line(served: str, tmp_path: Path) -> None:
    """Past about 33 levels protobuf's own copy of the message failed: a DecodeError
    traceback, no line named."""
    source = tmp_path / "deep.jsonl"
    for levels in (33, 40):
        good = {"id": "ok", "text": "fine", "payload": nested(32)}  # the deepest allowed
        source.write_text(jsonl(good, {"id": "deep", "text": "x", "payload": nested(levels)}))
        result = ingest(served, source, "deep", "--restart")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{source} line 2: payload.a.a" in result.stderr
        assert "objects and arrays nest at most 32 deep" in result.stderr
    with EmbedClient(served) as client:
        [kept] = client.get("deep", ["ok"])  # the good line before it is written
        assert kept.payload == nested(32)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"id": None, "text": "null id"}, "id must be a string or an integer, not null"),
        ({"id": True, "text": "bool id"}, "id must be a string or an integer, not bool"),
        ({"id": 1.5, "text": "float id"}, "id must be a string or an integer, not float"),
        ({"id": ["a"], "text": "list id"}, "id must be a string or an integer, not list"),
        ({"id": {"k": 1}, "text": "object id"}, "id must be a string or an integer, not dict"),
        ({"id": "t", "text": ["first", "second"]}, "text must be a string, not list"),
        ({"id": "t", "text": {"a": 1}}, "text must be a string, not dict"),
        ({"id": "t", "text": 7}, "text must be a string, not int"),
    ],
)
def test_ids_and_texts_of_other_types_are_refused_not_written_as_python_reprs(
    served: str, tmp_path: Path, line: dict[str, Any], message: str
) -> None:
    source = tmp_path / "types.jsonl"
    source.write_text(jsonl({"id": 7, "text": "an integer id"}, line))
    result = ingest(served, source, "types", "--store-text")
    assert result.returncode == 2, result.stderr
    assert f"{source} line 2: {message}" in result.stderr
    with EmbedClient(served) as client:
        stored = {d.id for d in client.scroll_iter("types")}
    assert stored == {"7"}  # an integer id is its decimal string; no "None", "True", "['a']"


def test_ingest_names_the_line_of_a_bad_vector_or_payload(served: str, tmp_path: Path) -> None:
    """These failed later, in the batch's conversion: "could not convert string to float:
    'a'", naming no line, and the good document before it in the batch was not written."""
    good = [{"id": f"v{i}", "vector": [0.5, 0.5, 0.5, 0.5]} for i in range(5)]
    with EmbedClient(served) as client:
        client.create_collection("badvec", dimensions=4)
    source = tmp_path / "badvec.jsonl"
    for bad, message in (
        ({"id": "v6", "vector": "abc"}, "vector must be a list of numbers, not str"),
        ({"id": "v6", "vector": [1, "2", 3, 4]}, "vector must be a list of numbers; item 1 is str"),
        ({"id": "v6", "vector": [[1, 2], [3, 4]]}, "vector must be a list of numbers; item 0 is"),
        ({"id": "v6", "vector": [1, True, 0, 0]}, "vector must be a list of numbers; item 1 is"),
        ({"id": "v6", "text": "t", "payload": [1]}, "payload must be an object, not list"),
        ({"id": "v6", "text": "t", "payload": "x"}, "payload must be an object, not str"),
    ):
        source.write_text(jsonl(*good, bad))
        result = ingest(served, source, "badvec", "--batch-size", "2", "--restart")
        assert result.returncode == 2, result.stderr
        assert f"{source} line 6: {message}" in result.stderr
    with EmbedClient(served) as client:
        assert client.count("badvec") == 5  # v4, in the bad line's batch, is written too


def similar_pair(served: str, path: Path | str, stdin: str | None = None) -> dict[str, Any]:
    result = run_cli("similarity", str(path), "--json", "--target", served, stdin=stdin)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    assert found["texts"] == 2
    [pair] = found["pairs"]
    return pair


def test_jsonl_texts_are_known_by_their_first_non_blank_line(served: str, tmp_path: Path) -> None:
    """A blank first line or a byte order mark made the file plain text: every JSON line
    was embedded as a text, with the wrong scores and labels."""
    rows = jsonl({"id": "a", "text": "a cat"}, {"id": "b", "text": "a kitten"})
    expected = similar_pair(served, "-", stdin=rows)
    assert (expected["a"]["text"], expected["b"]["text"]) == ("a cat", "a kitten")
    first, second = rows.splitlines()
    for name, content, lines in (
        ("blank_first.jsonl", "\n" + rows, (2, 3)),
        ("blank_between.jsonl", f"{first}\n\n  \n{second}\n", (1, 4)),
        ("bom.jsonl", BOM + rows, (1, 2)),
    ):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        pair = similar_pair(served, path)
        assert (pair["a"]["id"], pair["b"]["id"]) == ("a", "b"), name
        assert (pair["a"]["line"], pair["b"]["line"]) == lines, name
        assert pair["score"] == pytest.approx(expected["score"], abs=1e-5), name
    assert similar_pair(served, "-", stdin=BOM + rows)["a"]["text"] == "a cat"
    cluster = ["cluster", "--texts", str(tmp_path / "bom.jsonl"), "--k", "2", "--json"]
    clustered = run_cli(*cluster, "--target", served)
    assert clustered.returncode == 0, clustered.stderr
    members = [m["text"] for c in json.loads(clustered.stdout)["clusters"] for m in c["central"]]
    assert sorted(members) == ["a cat", "a kitten"]


def test_files_with_a_byte_order_mark_ingest(served: str, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with one: its first column was "\\ufeffid", "missing"."""
    rows = tmp_path / "bom.csv"
    rows.write_bytes((BOM + 'id,text,topic\r\nc1,"hello, world",a\r\n').encode())
    docs = tmp_path / "bom.jsonl"
    docs.write_bytes((BOM + jsonl({"id": "j1", "text": "hello"})).encode())
    for path in (rows, docs):
        result = ingest(served, path, "bom", "--store-text")
        assert result.returncode == 0, result.stderr
    piped = run_cli(
        "ingest", "-", "-c", "bom", "--target", served, stdin=BOM + jsonl({"id": "s1", "text": "x"})
    )
    assert piped.returncode == 0, piped.stderr
    with EmbedClient(served) as client:
        stored = {d.id: d.payload for d in client.get("bom", ["c1", "j1", "s1"])}
    assert stored["c1"] == {"text": "hello, world", "topic": "a"}
    assert set(stored) == {"c1", "j1", "s1"}
    # A bad byte after the mark is still named by its line and character.
    docs.write_bytes(BOM.encode() + b'{"id": "j2", "text": "caf\xe9"}\n')
    result = ingest(served, docs, "bom")
    assert result.returncode == 2
    assert "line 1 is not UTF-8 text (byte 0xe9 at character 26)" in result.stderr


def test_ingest_of_vectors_without_settings_creates_their_size(served: str, tmp_path: Path) -> None:
    """`export -o - | ingest -`: no settings file beside stdin. The collection was made at
    the model's 384 dimensions, then every 128-dimension vector was refused."""
    with EmbedClient(served) as client:
        client.create_collection("small", dimensions=128)
        client.upsert("small", [{"id": f"r{i}", "text": f"result {i}"} for i in range(3)])
    exported = run_cli("export", "small", "-o", "-", "--target", served)
    assert exported.returncode == 0, exported.stderr
    piped = run_cli("ingest", "-", "-c", "small_pipe", "--target", served, stdin=exported.stdout)
    assert piped.returncode == 0, piped.stderr
    # A file without its settings file too, and one whose settings say otherwise.
    copy = tmp_path / "copy.jsonl"
    copy.write_text(exported.stdout)
    assert ingest(served, copy, "small_file").returncode == 0
    with EmbedClient(served) as client:
        for name in ("small_pipe", "small_file"):
            assert client.get_collection(name).config.dimensions == 128
            assert client.count(name) == 3
    saved = tmp_path / "saved.jsonl"
    assert run_cli("export", "small", "-o", str(saved), "--target", served).returncode == 0
    settings = Path(str(saved) + ".collection.json")
    edited = json.loads(settings.read_text())
    edited["config"]["dimensions"] = 256  # the saved settings win; the vectors are refused
    settings.write_text(json.dumps(edited))
    refused = ingest(served, saved, "small_saved")
    assert refused.returncode == 2, refused.stderr  # by its line, before anything is made
    assert (
        f"{saved} line 1: the vector has 128 dimensions; {settings} makes collection "
        "'small_saved' with 256"
    ) in refused.stderr
    with EmbedClient(served) as client:
        assert "small_saved" not in client.list_collections()


def test_cluster_reports_the_clusters_it_formed(served: str, tmp_path: Path) -> None:
    """Identical texts form one cluster; k said 2 (chosen) or 3 (given) and listed one."""
    texts = tmp_path / "same.txt"
    texts.write_text("same\nsame\nsame\n")
    for options in ([], ["--k", "3"]):
        shown = run_cli("cluster", "--texts", str(texts), *options, "--target", served)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("1 clusters ("), shown.stdout
        assert shown.stdout.count("cluster 0: 3 documents") == 1
        reply = run_cli("cluster", "--texts", str(texts), *options, "--json", "--target", served)
        parsed = json.loads(reply.stdout)
        assert parsed["k"] == len(parsed["clusters"]) == 1 and set(parsed["labels"]) == {0}
    given = run_cli("cluster", "--texts", str(texts), "--k", "3", "--target", served)
    assert given.stdout.startswith("1 clusters (3 given: the points form only 1)"), given.stdout
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("same\nsame\nsame\na rocket flew to the moon\n")
    reply = run_cli("cluster", "--texts", str(mixed), "--k", "3", "--json", "--target", served)
    parsed = json.loads(reply.stdout)
    assert parsed["k"] == len(parsed["clusters"]) == 2
    assert sorted(set(parsed["labels"])) == [0, 1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("topic", "--index 'topic': expected FIELD:KIND"),
        ("topic:badkind", "--index 'topic:badkind': expected FIELD:KIND"),
        (":keyword", "--index ':keyword': expected FIELD:KIND"),
    ],
)
def test_a_malformed_index_names_the_value_and_the_kinds(
    served: str, spec: str, message: str
) -> None:
    for action in ("create", "update"):
        result = run_cli("collections", action, "ix", "--index", spec, "--target", served)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "keyword, integer, float, bool, text, datetime, geo" in result.stderr
    with EmbedClient(served) as client:
        assert "ix" not in client.list_collections()
        with pytest.raises(ValueError, match=r"payload_indexes\['topic'\] must be one of keyword"):
            client.create_collection("ix", payload_indexes={"topic": "badkind"})


def test_an_index_on_a_field_whose_name_holds_a_colon(served: str) -> None:
    """The kind follows the last colon; such a key is quoted, as in filters."""
    index = '"a:b":keyword'
    result = run_cli("collections", "create", "ixc", "--index", index, "--target", served)
    assert result.returncode == 0, result.stderr
    with EmbedClient(served) as client:
        assert dict(client.get_collection("ixc").config.payload_indexes) == {'"a:b"': 1}  # KEYWORD


@pytest.mark.parametrize("flag", ["--k", "--k-max", "--top-words", "--max-points"])
def test_cluster_counts_out_of_range_are_named_by_their_flag(served: str, flag: str) -> None:
    """protobuf's "Value out of range: 5000000000" named none."""
    result = run_cli("cluster", "anything", flag, "5000000000", "--target", served)
    assert result.returncode == 2, result.stderr
    assert f"argument {flag}: must be from" in result.stderr


@pytest.mark.parametrize(
    ("verb", "least", "value"),
    [("cluster", 2, "1"), ("cluster", 2, "5000000000"), ("map", 3, "2"), ("map", 3, "5000000000")],
)
def test_max_points_out_of_range_is_named_by_its_flag(
    served: str, verb: str, least: int, value: str
) -> None:
    """Refused by the flag, with the least a clustering (2 points) or a map (3) takes."""
    result = run_cli(verb, "anything", "--max-points", value, "--target", served)
    assert result.returncode == 2, result.stderr
    expected = f"argument --max-points: must be from {least} to 2**32 - 1, got {value}"
    assert expected in result.stderr


def test_embed_from_stdin_drops_windows_line_endings(served: str) -> None:
    result = run_cli("embed", "--target", served, stdin="one\r\ntwo\r\n")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["one", "two"]


def test_csv_keeps_line_endings_in_quoted_fields_and_counts_rows(
    served: str, tmp_path: Path
) -> None:
    rows = tmp_path / "multi.csv"
    rows.write_bytes(b'id,text\r\nc1,"multi\r\nline"\r\nc2,"one\ntwo\nthree"\r\nc3,plain\r\n')
    result = subprocess.run(
        [*CLI, "ingest", str(rows), "-c", "multi", "--store-text", "--target", served],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "3/3 docs" in result.stderr  # rows, not the file's 6 lines
    with EmbedClient(served) as client:
        stored = {d.id: d.payload["text"] for d in client.get("multi", ["c1", "c2"])}
    assert stored == {"c1": "multi\r\nline", "c2": "one\ntwo\nthree"}


def test_cluster_of_a_file_names_its_texts_as_the_file_does(served: str, tmp_path: Path) -> None:
    """Central members are shown by their JSONL id, or their line number, not by their
    position in the request."""
    rows = [("r1", "a rocket flew to the moon"), ("r2", "the rocket reached orbit")]
    rows += [("b1", "bake the bread for an hour"), ("b2", "knead the dough, then bake")]
    with_ids = tmp_path / "ids.jsonl"
    with_ids.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows))
    plain = tmp_path / "plain.txt"
    plain.write_text("\n" + "\n".join(t for _, t in rows) + "\n")  # its texts: lines 2 to 5
    for path, names in (
        (with_ids, ["b1", "b2", "r1", "r2"]),
        (plain, [f"line {n}" for n in range(2, 6)]),
    ):
        shown = run_cli("cluster", "--texts", str(path), "--k", "2", "--target", served)
        assert shown.returncode == 0, shown.stderr
        members = [
            line.removeprefix("  - ").split(" (")[0]
            for line in shown.stdout.splitlines()
            if line.startswith("  - ")
        ]
        assert sorted(members) == names, shown.stdout
        answer = run_cli("cluster", "--texts", str(path), "--k", "2", "--json", "--target", served)
        assert answer.returncode == 0, answer.stderr
        report = json.loads(answer.stdout)
        assert sorted(report["ids"]) == names
        central = [m["id"] for c in report["clusters"] for m in c["central"]]
        assert sorted(central) == names


def stored_ids(served: str, collection: str) -> set[str]:
    with EmbedClient(served) as client:
        if collection not in client.list_collections():
            return set()
        return {d.id for d in client.scroll_iter(collection)}


def test_a_csv_field_longer_than_the_csv_modules_limit_is_ingested(
    served: str, tmp_path: Path
) -> None:
    """Python's csv refuses a field over 131,072 characters by default: ingest ended in a
    csv.Error traceback (exit 1), nothing written, where JSONL took the same text."""
    text = "Pumps need seals. " * 8000  # 144,000 characters
    rows = tmp_path / "long.csv"
    rows.write_text(f'id,text\nok1,short\nbig1,"{text}"\n')
    result = ingest(served, rows, "long_csv", "--split", "--store-text")
    assert result.returncode == 0, result.stderr
    assert "2/2 docs" in result.stderr  # the progress total counted the long row too
    with EmbedClient(served) as client:
        parts = [d.payload for d in client.scroll_iter("long_csv") if d.id.startswith("big1#")]
    assert len(parts) > 1 and {p["passages"] for p in parts} == {len(parts)}
    assert max(p["span"][1] for p in parts) == len(text.rstrip())  # none of it cut off


def test_a_csv_row_with_more_fields_than_its_header_is_refused(served: str, tmp_path: Path) -> None:
    """Its surplus went to DictReader's key None and was dropped: "Hello, world" unquoted
    was stored as text "Hello", topic " world", year "news"."""
    rows = tmp_path / "shift.csv"
    rows.write_text("id,text,topic,year\nc5,Fine,news,2020\nc6,Hello, world,news,2021\n")
    result = ingest(served, rows, "shift_csv", "--store-text")
    assert result.returncode == 2, result.stderr
    assert f"{rows} line 3: the row has 5 fields, the header 4" in result.stderr
    assert stored_ids(served, "shift_csv") == {"c5"}  # the row before it is written


def test_a_csv_quote_never_closed_is_refused_by_the_line_it_opens_on(
    served: str, tmp_path: Path
) -> None:
    """The rest of the file was read as one text (exit 0): u3 and every row after the
    quote lost."""
    rows = tmp_path / "unterminated.csv"
    rows.write_text('id,text\nu1,"two\nlines"\nu2,"unterminated\nu3,more\nu4,more\n')
    result = ingest(served, rows, "unterminated_csv", "--store-text")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{rows} line 4: not CSV (a quoted field" in result.stderr  # u2's row, not line 6
    assert "never closed" in result.stderr
    assert stored_ids(served, "unterminated_csv") == {"u1"}
    # Text after a closing quote is refused too, not glued to the quoted part.
    rows.write_text('id,text\nq1,"quoted" tail\n')
    result = ingest(served, rows, "unterminated_csv", "--restart")
    assert result.returncode == 2, result.stderr
    assert f"{rows} line 2: not CSV (',' expected after '\"')" in result.stderr


def test_a_missing_or_null_text_is_named_as_missing(served: str, tmp_path: Path) -> None:
    """Both were "a document needs an id and a text or a vector; this one has id, text,
    payload": the text named among the fields it has."""
    rows = tmp_path / "short.csv"
    rows.write_text("id,text,topic\nm1\n")
    result = ingest(served, rows, "missing_text")
    assert result.returncode == 2, result.stderr
    assert f"{rows} line 2: the row has no text: 1 field, the header 3" in result.stderr
    lines = tmp_path / "null.jsonl"
    lines.write_text(jsonl({"id": "j1", "text": None}))
    result = ingest(served, lines, "missing_text")
    assert result.returncode == 2, result.stderr
    assert (
        f"{lines} line 1: a document needs an id and a text or a vector; this one has id, "
        "and its text is null"
    ) in result.stderr
    assert stored_ids(served, "missing_text") == set()  # nothing was created for them


def test_a_vector_of_another_size_is_named_by_its_line(served: str, tmp_path: Path) -> None:
    """The server refused it naming only "batch_id '2': documents[0].vector has 5
    dimensions" (exit 1); now the line is named, the documents before it are written and
    checkpointed, as for a line that is not JSON."""
    source = tmp_path / "sizes.jsonl"
    good = [{"id": f"s{i}", "vector": [0.5, 0.5, 0.5, 0.5]} for i in range(4)]
    source.write_text(jsonl(*good, {"id": "s4", "vector": [0.1] * 5}, {"id": "s5", "text": "x"}))
    # Created at the first vector's size.
    result = ingest(served, source, "sizes", "--batch-size", "2")
    assert result.returncode == 2, result.stderr
    assert f"{source} line 5: the vector has 5 dimensions; collection 'sizes' stores 4" in (
        result.stderr
    )
    assert stored_ids(served, "sizes") == {"s0", "s1", "s2", "s3"}
    progress = json.loads((tmp_path / "sizes.jsonl.progress").read_text())
    assert progress["acknowledged"] == 4
    # A collection that exists: of the model's 384 dimensions, the first line is named.
    with EmbedClient(served) as client:
        client.create_collection("sizes_384")
    result = ingest(served, source, "sizes_384", "--restart")
    assert result.returncode == 2, result.stderr
    assert f"{source} line 1: the vector has 4 dimensions; collection 'sizes_384' stores 384" in (
        result.stderr
    )
    assert stored_ids(served, "sizes_384") == set()


def test_a_first_batch_the_server_refuses_leaves_no_collection_behind(
    served: str, tmp_path: Path
) -> None:
    """The collection ingest had just made stayed, empty, with settings of the refused run."""
    source = tmp_path / "notes.jsonl"
    source.write_text(jsonl(*({"id": f"n{i}", "text": f"note {i}"} for i in range(3))))
    refused = ingest(served, source, "refused-split", "--passage-tokens", "100000")
    assert refused.returncode == 1, refused.stderr
    assert "options.split.max_tokens must be from 1 to" in refused.stderr
    assert "removed collection 'refused-split': nothing was written" in refused.stderr
    with EmbedClient(served) as client:
        assert "refused-split" not in client.list_collections()
    assert ingest(served, source, "refused-split", "--passage-tokens", "64").returncode == 0


def test_a_document_the_server_refuses_is_named_by_its_line(served: str, tmp_path: Path) -> None:
    """It was named by its place in its batch (batch_id '2': documents[1]), and after a
    resume by another batch's numbers."""
    source = tmp_path / "notes.jsonl"
    notes = [{"id": f"n{i}", "text": f"note {i}"} for i in range(7)]
    notes[5] = {"id": "n5#2", "text": "an id as a passage's"}  # refused with --split
    source.write_text("\n" + jsonl(*notes))  # a blank first line: lines are counted, not ids
    result = ingest(served, source, "named", "--batch-size", "2", "--split")
    assert result.returncode == 1, result.stderr
    assert f"INVALID_ARGUMENT: {source} line 7: " in result.stderr, result.stderr
    again = ingest(served, source, "named", "--batch-size", "2", "--split")
    assert f"INVALID_ARGUMENT: {source} line 7: " in again.stderr, again.stderr


@pytest.mark.parametrize(
    "command",
    [["similarity", "{file}"], ["cluster", "--texts", "{file}"], ["map", "{file}", "-o", "{png}"]],
)
def test_a_refused_text_of_a_file_is_named_by_its_line(
    served: str, tmp_path: Path, command: list[str]
) -> None:
    """Blank lines are not sent: the text's place in the request (texts[2]) is not its
    line."""
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(["first", "", "second", "x" * 1_000_001, "last"]) + "\n")
    args = [part.format(file=texts, png=tmp_path / "map.png") for part in command]
    result = run_cli(*args, "--target", served)
    assert result.returncode == 1, result.stderr
    assert f"{texts} line 4 has 1000001 characters" in result.stderr


def test_embed_names_a_refused_text_of_stdin_by_its_line(served: str) -> None:
    """Blank lines are not sent: inputs[2] was the sixth line."""
    lines = ["first", "", "second", "", "", "x" * 1_000_001, "last"]
    result = run_cli("embed", "--target", served, stdin="\n".join(lines) + "\n")
    assert result.returncode == 1, result.stderr
    assert "stdin line 6 has 1000001 characters" in result.stderr


def test_cluster_sends_an_algorithms_own_options_only(served: str, tmp_path: Path) -> None:
    """The defaults of k-means' options went with hdbscan too; one given to the other
    algorithm is refused by the server, which ignored it before."""
    texts = tmp_path / "copies.txt"
    texts.write_text("a rocket\n" * 6 + "bread and butter\n" * 6)
    found = run_cli("cluster", "--texts", str(texts), "--algorithm", "hdbscan", "--target", served)
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("2 clusters (found by hdbscan)")
    args = ["cluster", "--texts", str(texts), "--algorithm", "hdbscan", "--k", "2"]
    refused = run_cli(*args, "--target", served)
    assert refused.returncode == 1
    assert "k applies to kmeans; hdbscan finds the number of clusters" in refused.stderr
