"""A data folder written by a newer embedserve, or left ambiguous by an older one, is
refused at open, naming the file: never read with its unknown settings dropped (an
ingest would store documents without the keyword vectors the collection expects)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from embedserve.connectors import CollectionSpec, EdgeStore, StoreError


def _folder(tmp_path: Path) -> Path:
    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("kw", vector_size=4, bm25=True))
        store.create_collection(CollectionSpec("current", vector_size=4))
        store.update_aliases({"live": "kw"})
    return tmp_path


def _files(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text("utf-8"))
    change(data)
    path.write_text(json.dumps(data), "utf-8")


def test_the_folder_this_version_wrote_opens(tmp_path: Path) -> None:
    with EdgeStore(_folder(tmp_path)) as store:
        assert store.list_collections() == ["current", "kw"]
        assert store.list_aliases() == {"live": "kw"}
        assert store.get_collection("kw").spec.bm25


@pytest.mark.parametrize(
    ("file", "change", "expected"),
    [
        (
            "collections/kw/collection.json",
            lambda d: d["spec"].update(sparse_model="splade", tiers=2),
            "holds settings this embedserve does not know (sparse_model, tiers): a newer",
        ),
        (
            "collections/kw/collection.json",
            lambda d: d.update(format=2),
            "is of format 2, newer than this embedserve reads (1): a newer version",
        ),
        ("aliases.json", lambda d: d.update(format=2), "is of format 2, newer than"),
        ("aliases.json", lambda d: d.update(format="1"), "its format is '1', not a whole"),
        ("aliases.json", lambda d: d.update(format=True), "its format is True, not a whole"),
        (
            "aliases.json",
            lambda d: d["aliases"].update(current="kw"),
            "names alias 'current', which is also the name of a collection",
        ),
        # Hand edits of the wrong shape: each said only "'NoneType' object is not
        # iterable" or the like, naming no file.
        ("aliases.json", lambda d: d.update(aliases=None), "'aliases' is no object of names"),
        ("aliases.json", lambda d: d.update(aliases=[]), "'aliases' is no object of names"),
        (
            "aliases.json",
            lambda d: d.update(aliases={"a9": ["kw"]}),
            "'aliases' is no object of names",
        ),
        ("collections/kw/collection.json", lambda d: d.update(spec=None), "'spec' is no object"),
        (
            "collections/kw/collection.json",
            lambda d: d["spec"].update(payload_indexes=["k"]),
            "unreadable collection spec",
        ),
    ],
)
def test_a_folder_it_would_misread_is_refused_naming_the_file(
    tmp_path: Path, file: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    path = _folder(tmp_path) / file
    original = path.read_bytes()
    _edit(path, change)
    edited = _files(tmp_path)
    with pytest.raises(StoreError) as refused:
        EdgeStore(tmp_path)
    assert str(path) in str(refused.value)
    assert expected in str(refused.value)
    # Every file as it was, for the version that reads it: the engine opened no shard.
    assert _files(tmp_path) == edited
    path.write_bytes(original)
    with EdgeStore(tmp_path) as store:  # the refusal let go of the folder's lock
        assert store.list_collections() == ["current", "kw"]
