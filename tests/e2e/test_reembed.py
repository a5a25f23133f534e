"""`embedserve reembed`: a collection written by one model, embedded again by the next one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main
from embedserve.v1 import vector_pb2 as pb

DOCS = [
    {"id": f"d{i}", "text": text, "payload": {"topic": topic}}
    for i, (text, topic) in enumerate(
        [
            ("the rocket reached orbit after a long countdown", "space"),
            ("the probe landed on a frozen moon", "space"),
            ("bake the bread until the crust is brown", "food"),
            ("simmer the tomato sauce with garlic", "food"),
            ("the striker scored in the final minute", "sport"),
            ("the team trained on a muddy pitch", "sport"),
        ]
    )
]


def test_reembed_writes_the_served_models_vectors(
    start_server, minilm_model, build_tiny_model, tmp_path, capsys
) -> None:
    data = str(tmp_path / "shared-data")
    old = start_server(loaded=minilm_model, data_dir=data)
    with EmbedClient(old.target) as client:
        client.create_collection(
            "articles",
            payload_indexes={"topic": "keyword"},
            dimensions=128,  # Matryoshka: the new model's width replaces it unless asked
            distance="dot",
            hnsw_m=16,
            hnsw_ef=64,
            full_scan_threshold_kb=5000,
        )
        list(client.ingest_iter("articles", DOCS, store_text=True))
        client.create_collection("bare")
        client.upsert("bare", [{"id": "x", "text": "no text kept"}])
    old.run(old.server.stop(0))  # closes the store; the fixture ends its loop later

    # The next model (here a tiny ModernBERT) serves the same store.
    new = start_server(model=str(build_tiny_model()), data_dir=data)
    assert cli_main(["reembed", "articles", "--to", "articles-v2", "--target", new.target]) == 0
    err = capsys.readouterr().err
    assert "re-embedded 6 documents" in err
    assert "'articles-v2' stores 64 dimensions, 'articles' 128" in err
    with EmbedClient(new.target) as client:
        info = client.get_collection("articles-v2")
        assert info.points_count == 6 and info.config.dimensions == 64
        source = client.get_collection("articles").config
        source.dimensions = 64
        assert info.config == source  # every other setting carried over
        stored = {d.id: d.payload for d in client.scroll_iter("articles-v2")}
        assert stored == {d["id"]: {**d["payload"], "text": d["text"]} for d in DOCS}
        # The new collection ranks as the served model does, by brute force over its vectors.
        documents = client.embed([d["text"] for d in DOCS], task="document")
        for query in ("a spacecraft in orbit", "cooking dinner", "a football match"):
            vector = client.embed(query, task="query")[0]
            expected = [DOCS[i]["id"] for i in np.argsort(-(documents @ vector))]
            hits = client.search("articles-v2", query, limit=6, exact=True)
            assert [h.id for h in hits] == expected

    assert cli_main(["reembed", "articles", "--to", "articles-v2", "--target", new.target]) == 2
    assert "exists already" in capsys.readouterr().err
    small = ["reembed", "articles", "--to", "articles-32", "--dimensions", "32"]
    assert cli_main([*small, "--target", new.target]) == 0
    with EmbedClient(new.target) as client:
        assert client.get_collection("articles-32").config.dimensions == 32
    assert cli_main(["reembed", "bare", "--to", "bare-v2", "--target", new.target]) == 2
    assert "1 document of 'bare' to re-embed has no stored text" in capsys.readouterr().err
    with EmbedClient(new.target) as client:
        assert "bare-v2" not in client.list_collections()  # nothing half-made

    # A dense collection becomes one for keyword and hybrid search.
    hybrid = ["reembed", "articles", "--to", "articles-kw", "--bm25-language", "french"]
    assert cli_main([*hybrid, "--target", new.target]) == 0
    with EmbedClient(new.target) as client:
        config = client.get_collection("articles-kw").config
        assert (config.bm25, config.bm25_language) == (True, "french")
        hits = client.search("articles-kw", "garlic tomato", mode="keyword")
        assert [h.id for h in hits] == ["d3"]


def test_an_interrupted_reembed_resumes_where_it_stopped(minilm_server, capsys) -> None:
    """Ctrl-C (a real SIGINT to the command) leaves the new collection part-filled; a rerun
    said only "exists already; pick a new name". With --resume it adds the missing ones."""
    target = minilm_server.target
    count = 4000
    documents = [{"id": f"n{i}", "text": f"note {i} on topic {i % 17}"} for i in range(count)]
    with EmbedClient(target) as client:
        client.create_collection("notes")
        list(client.ingest_iter("notes", documents, batch_size=500, store_text=True))
    command = [sys.executable, "-m", "embedserve.server.cli", "reembed", "notes"]
    command += ["--to", "notes-v2", "--target", target, "--batch-size", "32"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=1)
    assert process.stderr is not None
    shown = ""
    while "documents re-embedded" not in shown:  # the first acknowledgement
        shown += process.stderr.read(1) or pytest.fail(f"reembed ended early: {shown}")
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=120)[1]
    assert process.returncode == 130
    assert "run the same command with --resume to continue" in rest
    with EmbedClient(target) as client:
        written = client.count("notes-v2")
    assert 0 < written < count, "the run ended before it was interrupted: make it longer"

    args = ["reembed", "notes", "--to", "notes-v2", "--target", target]
    assert cli_main(args) == 2
    assert f"exists already ({written} documents); pass --resume" in capsys.readouterr().err
    assert cli_main([*args, "--resume"]) == 0
    assert f"re-embedded {count - written} documents" in capsys.readouterr().err
    with EmbedClient(target) as client:
        assert client.count("notes-v2") == count
        stored = {d.id: d.payload["text"] for d in client.scroll_iter("notes-v2")}
    assert stored == {d["id"]: d["text"] for d in documents}
    assert cli_main(["reembed", "notes", "--to", "nowhere", "--resume", "--target", target]) == 2
    assert "--resume: there is no collection 'nowhere' to continue" in capsys.readouterr().err


def test_reembed_splits_whole_documents_into_passages(minilm_server, capsys) -> None:
    """A collection of whole long documents (texts stored) becomes one of passages; a
    resumed run skips the documents whose first passage is there."""
    target = minilm_server.target
    documents = [
        {"id": f"g{i}", "text": f"Guide {i}. " + "The ferry crosses the bay at dawn. " * 30}
        for i in range(3)
    ]
    with EmbedClient(target) as client:
        client.create_collection("guides")
        client.upsert("guides", documents[:2], store_text=True)
    args = ["reembed", "guides", "--to", "guide-passages", "--target", target]
    assert cli_main([*args, "--passage-tokens", "48", "--passage-overlap", "4"]) == 0
    assert "re-embedded 2 documents" in capsys.readouterr().err
    with EmbedClient(target) as client:
        client.upsert("guides", documents[2:], store_text=True)
        first = {d.id: d.payload for d in client.scroll_iter("guide-passages")}
        assert {p["doc_id"] for p in first.values()} == {"g0", "g1"}
        config = client.get_collection("guide-passages").config
        assert dict(config.payload_indexes) == {"doc_id": pb.PAYLOAD_INDEX_KIND_KEYWORD}
        assert all(
            p["text"] == documents[int(p["doc_id"][1])]["text"][slice(*p["span"])]
            for p in first.values()
        )
    assert cli_main([*args, "--passage-tokens", "48", "--passage-overlap", "4", "--resume"]) == 0
    assert "re-embedded 1 documents" in capsys.readouterr().err
    with EmbedClient(target) as client:
        passages = list(client.scroll_iter("guide-passages"))
    assert {d.payload["doc_id"] for d in passages} == {"g0", "g1", "g2"}
    assert len(passages) == 3 * len(first) // 2 > 6


def test_reembed_then_swap_the_alias_clients_use(minilm_server, tmp_path, capsys) -> None:
    """Clients search "articles", an alias; reembed --alias moves it to the new collection
    once every document is written, and ingest writes through it without creating one."""
    target = ["--target", minilm_server.target]
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("articles-v1", dimensions=64)
        list(client.ingest_iter("articles-v1", DOCS, store_text=True))
    assert cli_main(["collections", "alias", "articles", "--to", "articles-v1", *target]) == 0
    assert cli_main(["collections", "aliases", *target]) == 0
    assert capsys.readouterr().out == "articles -> articles-v1\n"

    refused = ["reembed", "articles", "--to", "articles-v2", "--alias", "articles-v1"]
    assert cli_main([*refused, *target]) == 2
    assert "is a collection's name" in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        assert "articles-v2" not in client.list_collections()  # refused before any work

    moved = ["reembed", "articles", "--to", "articles-v2", "--alias", "articles"]
    assert cli_main([*moved, *target]) == 0
    assert "alias 'articles' now names 'articles-v2'" in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        info = client.get_collection("articles")
        assert (info.name, info.config.dimensions, info.points_count) == ("articles-v2", 384, 6)

    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"id": "d9", "text": "the comet passed the sun"}\n')
    assert cli_main(["ingest", str(extra), "-c", "articles", *target]) == 0
    assert "created collection" not in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        assert client.count("articles-v2") == 7

    assert cli_main(["collections", "unalias", "articles", *target]) == 0
    assert cli_main(["collections", "aliases", *target]) == 0
    assert capsys.readouterr().out == ""
    assert cli_main(["collections", "alias", "articles", *target]) == 2
    assert "needs --to COLLECTION" in capsys.readouterr().err


def test_reembed_refuses_documents_without_text_before_writing_any(minilm_server, capsys) -> None:
    """A document written as a raw vector has no stored text: reembed stopped part-way at
    it ("document 'vec-only' has no stored text"), the new collection half-filled, and
    --resume failed the same way. They are counted before anything is created, and the
    refusal gives the --filter that leaves them out."""
    target = minilm_server.target
    documents = [
        {"id": f"m{i:03}", "text": f"note {i} on topic {i % 7}", "payload": {"half": i % 2}}
        for i in range(40)
    ]
    with EmbedClient(target) as client:
        client.create_collection("mixed", payload_indexes={"half": "integer"})
        list(client.ingest_iter("mixed", documents, store_text=True))
        vector = client.embed("a note written as a vector", task="document")[0]
        client.upsert("mixed", [{"id": "vec-only", "vector": vector, "payload": {"half": 1}}])
        client.upsert("mixed", [{"id": "vec-too", "vector": vector, "payload": {"half": 0}}])
    args = ["reembed", "mixed", "--to", "mixed-v2", "--target", target, "--batch-size", "4"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "2 documents of 'mixed' to re-embed have no stored text" in err
    with EmbedClient(target) as client:
        assert "mixed-v2" not in client.list_collections()  # nothing half-made
    hint = err.split("--filter ")[-1].strip()
    assert json.loads(hint.strip("'")) == {"must_not": [{"is_empty": {"key": "text"}}]}
    assert cli_main([*args, "--filter", hint.strip("'")]) == 0
    assert "re-embedded 40 documents" in capsys.readouterr().err
    with EmbedClient(target) as client:
        stored = {d.id: d.payload["text"] for d in client.scroll_iter("mixed-v2")}
    assert stored == {d["id"]: d["text"] for d in documents}

    # With a --filter of its own, only the matching documents are counted, and the hint
    # keeps that filter.
    odd = json.dumps({"must": [{"match": {"key": "half", "integer": 1}}]})
    args = ["reembed", "mixed", "--to", "mixed-odd", "--target", target, "--filter", odd]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "1 document of 'mixed' to re-embed has no stored text" in err
    hint = json.loads(err.split("--filter ")[-1].strip().strip("'"))
    assert hint["must"] == [{"filter": json.loads(odd)}]
    assert cli_main([*args[:-1], json.dumps(hint)]) == 0
    with EmbedClient(target) as client:
        assert client.count("mixed-odd") == 20


def test_a_failure_part_way_ends_the_progress_line_first(minilm_server, capsys) -> None:
    """The error came on the progress line: "40 documents re-embeddedembedserve: ..."."""
    target = minilm_server.target
    documents = [{"id": f"a{i:03}", "text": f"note {i}"} for i in range(200)]
    with EmbedClient(target) as client:
        client.create_collection("odd")
        list(client.ingest_iter("odd", documents, store_text=True))
        # A text that is no string (set as a payload, not stored by --store-text): not
        # empty, so not counted beforehand; it is found when read, the last document read.
        last = [d.id for d in client.scroll_iter("odd")][-1]
        vector = client.embed("odd one", task="document")[0]
        client.upsert("odd", [{"id": last, "vector": vector, "payload": {"text": 5}}])
        assert [d.id for d in client.scroll_iter("odd")][-1] == last
    args = ["reembed", "odd", "--to", "odd-v2", "--target", target, "--batch-size", "4"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert f"document {last!r} has no stored text" in err
    assert "documents re-embedded\nembedserve: " in err


def test_reembed_split_of_passages_is_refused_before_anything_is_made(
    minilm_server, capsys
) -> None:
    """A collection stored as passages ('oven#5') made an empty target, then failed
    ("documents[0].id 'oven#5' ends in '#<digits>'"); a rerun said the target existed."""
    target = minilm_server.target
    manual = {"id": "oven", "text": "Preheat the oven before baking the bread. " * 40}
    with EmbedClient(target) as client:
        client.create_collection("manual-passages")
        client.upsert("manual-passages", [manual], store_text=True, split={"max_tokens": 32})
        passages = client.count("manual-passages")
    assert passages > 1
    args = ["reembed", "manual-passages", "--to", "resplit", "--target", target]
    for split in (["--split"], ["--passage-tokens", "64"]):
        assert cli_main([*args, *split]) == 2
        err = capsys.readouterr().err
        assert "'manual-passages' holds passages" in err
        assert "reembed it without --split" in err
        with EmbedClient(target) as client:
            assert "resplit" not in client.list_collections()
    # Without --split the passages are copied one to one.
    assert cli_main(args) == 0
    assert f"re-embedded {passages} documents" in capsys.readouterr().err
    with EmbedClient(target) as client:
        before = {d.id: d.payload for d in client.scroll_iter("manual-passages")}
        after = {d.id: d.payload for d in client.scroll_iter("resplit")}
    assert after == before


def test_an_alias_named_as_the_new_collection_is_refused_at_once(minilm_server, capsys) -> None:
    """--alias X --to X was refused only after every document was written."""
    target = minilm_server.target
    with EmbedClient(target) as client:
        client.create_collection("src")
        list(client.ingest_iter("src", DOCS, store_text=True))
    args = ["reembed", "src", "--to", "src-v2", "--alias", "src-v2", "--target", target]
    assert cli_main(args) == 2
    assert "--alias 'src-v2' is the name --to gives the new collection" in (capsys.readouterr().err)
    with EmbedClient(target) as client:
        assert "src-v2" not in client.list_collections()


def test_a_split_the_server_refuses_leaves_no_collection_behind(minilm_server, capsys) -> None:
    """--passage-tokens past the model's room was refused at the first batch, after the new
    collection was made: the corrected command was then told to pass --resume."""
    target = minilm_server.target
    with EmbedClient(target) as client:
        client.create_collection("whole")
        list(client.ingest_iter("whole", DOCS, store_text=True))
    args = ["reembed", "whole", "--to", "whole-split", "--target", target]
    assert cli_main([*args, "--passage-tokens", "100000"]) == 1
    assert "options.split.max_tokens must be from 1 to 254" in capsys.readouterr().err
    with EmbedClient(target) as client:
        assert "whole-split" not in client.list_collections()
    with pytest.raises(SystemExit) as refused:  # refused by the flag's type, before any call
        cli_main([*args, "--passage-tokens", "0"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "argument --passage-tokens: must be from 1 to 2**32 - 1, got 0" in err
    assert cli_main([*args, "--passage-tokens", "64"]) == 0
    assert f"re-embedded {len(DOCS)} documents" in capsys.readouterr().err


def test_a_batch_size_past_a_page_is_refused_by_its_flag(capsys) -> None:
    """The server's "limit must be in [1, 10000]" named no flag."""
    with pytest.raises(SystemExit) as refused:  # before any call: no server is needed
        cli_main(["reembed", "notes", "--to", "notes-v2", "--batch-size", "20000"])
    assert refused.value.code == 2
    assert "argument --batch-size: must be from 1 to 10000, got 20000" in capsys.readouterr().err
