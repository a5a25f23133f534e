"""Ids of documents split into passages, end to end with MiniLM over gRPC and HTTP: an
id that ends as a passage's does ("report#1") is refused for a split write, since writing
it would replace a passage of another document; and a passage ending on a word with a
combining accent stores the whole word."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient

SPLIT = {"max_tokens": 10, "overlap_tokens": 0}
REPORT = " ".join(f"w{i}" for i in range(30))


@pytest.fixture
def client(both: Any) -> Any:
    with EmbedClient(both.target) as client:
        client.create_collection("docs", payload_indexes={"doc_id": "keyword"})
        yield client


def points(client: Any) -> list[tuple[str, str | None]]:
    return sorted((d.id, d.payload.get("doc_id")) for d in client.scroll_iter("docs"))


def test_a_split_document_may_not_take_a_passage_id(both: Any, client: Any) -> None:
    client.upsert("docs", [{"id": "report", "text": REPORT}], split=SPLIT)
    before = points(client)
    assert ("report#1", "report") in before and len(before) > 2
    for doc_id in ["report#1", "report#0", "x#12"]:
        with pytest.raises(grpc.RpcError) as refused:
            client.upsert("docs", [{"id": doc_id, "text": "the first appendix"}], split=SPLIT)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"documents[0].id {doc_id!r} ends in '#<digits>'" in refused.value.details()
    body = {
        "documents": [{"id": "ok", "text": "fine"}, {"id": "report#1", "text": "appendix"}],
        "options": {"split": SPLIT},
    }
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post("/api/v1/collections/docs/upsert", json=body)
    assert reply.status_code == 400
    assert "documents[1].id 'report#1' ends in '#<digits>'" in reply.text
    assert points(client) == before  # no passage of "report" went
    # Ids that only hold a '#' are split as before; unsplit, any id is written as given.
    client.upsert(
        "docs", [{"id": "a#b", "text": "one"}, {"id": "c#1x", "text": "two"}], split=SPLIT
    )
    client.upsert("docs", [{"id": "appendix#1", "text": "written whole"}])
    assert {"a#b#0", "c#1x#0", "appendix#1"} <= {d for d, _ in points(client)}


def test_a_passage_text_keeps_a_combining_accent(client: Any) -> None:
    text = " ".join(["cafe\u0301"] * 40)
    client.upsert(
        "docs",
        [{"id": "d", "text": text}],
        split={"max_tokens": 8, "overlap_tokens": 0},
        store_text=True,
    )
    passages = sorted(client.scroll_iter("docs"), key=lambda d: d.payload["passage"])
    assert [p.payload["span"] for p in passages[:2]] == [[0, 47], [48, 95]]
    assert all(p.payload["text"] == " ".join(["cafe\u0301"] * 8) for p in passages)
