"""The keys file read as the README writes it: a comment after a key's collections is a
comment, and a file that holds no key, or a JSON key the server would read other than
as written, is refused at start (naming the file), as a reload refuses it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from running_server import free_port
from test_cli_security import CLI

from embedserve.client import EmbedClient
from embedserve.server.auth import AuthSettings, Role, load_keys
from embedserve.server.config import Settings
from embedserve.server.errors import FailedPrecondition

ADMIN, WRITER, NOTED = "admin-secret-1", "writekey1", "k-noted-2"
# The README's example line, and a comment after a key's role.
KEYS_TXT = f"""# keys.txt
{ADMIN}  admin
{WRITER}  write  news articles     # may only use these two collections
{NOTED} read  # note
"""


def keys_of(tmp_path: Path, text: str, name: str = "keys.txt") -> Any:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_keys(AuthSettings(api_keys_file=str(path)))


def test_a_comment_after_a_key_is_not_read_as_collections(tmp_path: Path) -> None:
    ring = keys_of(tmp_path, KEYS_TXT)
    assert len(ring) == 3
    assert ring.lookup(WRITER).collections == {"news", "articles"}
    assert ring.lookup(NOTED).collections == frozenset()  # every collection
    assert ring.lookup(NOTED).role == Role.READ
    # The variable's entries too; a '#' inside a word is not a comment.
    ring = load_keys(AuthSettings(api_keys="k1 write a#b # c d; k2 read #x"))
    assert ring.lookup("k1").collections == {"a#b"}  # type: ignore[union-attr]
    assert ring.lookup("k2").collections == frozenset()  # type: ignore[union-attr]
    with pytest.raises(FailedPrecondition, match=r"keys.txt line 1: expected 'key role"):
        keys_of(tmp_path, "lonely-key # read\n")


def test_a_commented_key_gets_the_collections_written(
    start_server: Callable[..., Any], minilm_model: Any, tmp_path: Path
) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(KEYS_TXT)
    running = start_server(loaded=minilm_model, api_keys_file=str(path))
    with EmbedClient(running.target, api_key=ADMIN) as admin:
        for name in ("news", "collections", "note"):
            admin.create_collection(name)
    with EmbedClient(running.target, api_key=WRITER) as writer:
        writer.delete("news", ["gone"])
        for other in ("collections", "note"):  # words of the comment, not collections
            with pytest.raises(grpc.RpcError) as info:
                writer.delete(other, ["gone"])
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, other
    with EmbedClient(running.target, api_key=NOTED) as noted:
        assert noted.count("news") == 0  # not limited to collections '#' and 'note'
        assert sorted(noted.list_collections()) == ["collections", "news", "note"]


KEYLESS = {
    "empty": ("keys.txt", ""),
    "comments only": ("keys.txt", "# no key yet\n\n   # still none\n"),
    "a commented-out key": ("keys.txt", "#k1 admin\n"),
    "an empty JSON list": ("keys.json", "[]"),
    "an empty 'keys' list": ("keys.json", '{"keys": []}'),
}


@pytest.mark.parametrize("case", KEYLESS, ids=list(KEYLESS))
def test_a_keys_file_that_holds_no_key_is_refused_at_start(tmp_path: Path, case: str) -> None:
    """Auth was off, silently, and a reload could never turn it on."""
    name, text = KEYLESS[case]
    path = tmp_path / name
    path.write_text(text)
    settings = Settings(api_keys_file=str(path), port=0, http_port=0)

    async def build() -> Any:
        from embedserve.server.app import EmbedServer

        return EmbedServer(settings)  # checks the keys; binds nothing

    with pytest.raises(FailedPrecondition) as info:
        asyncio.run(build())
    assert str(path) in info.value.message
    assert "holds no key, which would turn auth off" in info.value.message


REFUSED_JSON = {
    # one key's object instead of a list of them: zero keys, auth off
    "one object": ({"key": "k1", "role": "admin"}, "holds one key's object"),
    "no 'keys'": ({"kys": [{"key": "k1", "role": "admin"}]}, "must hold 'keys'"),
    "a string of collections": (
        [{"key": "k1", "role": "write", "collections": "news"}],
        "entry 1: 'collections' must be a non-empty list",
    ),
    "a misspelt field": (
        [
            {"key": "k1", "role": "read"},
            {"key": "k2", "role": "write", "collection": ["news"]},
        ],
        "entry 2: unknown field 'collection' (did you mean 'collections'?)",
    ),
    "no role": ([{"key": "k1"}], "entry 1: needs a 'role'"),
    "an empty list of collections": (
        [{"key": "k1", "role": "write", "collections": []}],
        "entry 1: 'collections' must be a non-empty list",
    ),
    "a role that is no string": ([{"key": "k1", "role": 3}], "entry 1: needs a 'role'"),
}


@pytest.mark.parametrize("case", REFUSED_JSON, ids=list(REFUSED_JSON))
def test_a_json_key_read_other_than_written_is_refused(tmp_path: Path, case: str) -> None:
    data, expected = REFUSED_JSON[case]
    with pytest.raises(FailedPrecondition) as info:
        keys_of(tmp_path, json.dumps(data), "keys.json")
    assert str(tmp_path / "keys.json") in info.value.message
    assert expected in info.value.message
    assert "k1" not in info.value.message and "k2" not in info.value.message


def test_an_unknown_json_field_that_may_be_a_key_is_not_named(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition) as info:
        keys_of(tmp_path, json.dumps([{"key": "k1", "role": "read", "s3cr3t-k3y": 1}]), "k.json")
    assert "1 unknown field (not named" in info.value.message
    assert "s3cr3t" not in info.value.message


def test_malformed_json_is_refused_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match=r"keys.json line 2: not valid JSON"):
        keys_of(tmp_path, '[{"key": "k1", "role": "read"},\n oops]', "keys.json")


def test_a_json_file_as_written_is_read_as_written(tmp_path: Path) -> None:
    ring = keys_of(
        tmp_path,
        json.dumps(
            {
                "keys": [
                    {"key": "k1", "role": "admin"},
                    {"key": "k2", "role": "write", "collections": ["news"]},
                ]
            }
        ),
        "keys.json",
    )
    assert ring.lookup("k1").role == Role.ADMIN and not ring.lookup("k1").collections
    assert ring.lookup("k2").collections == {"news"}


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    """Windows' Notepad starts a UTF-8 file with one: the first key never matched."""
    ring = keys_of(tmp_path, "\ufeffk1 admin\nk2 read\n")
    assert ring.lookup("k1") is not None and ring.lookup("\ufeffk1") is None
    ring = keys_of(tmp_path, '\ufeff[{"key": "k3", "role": "read"}]', "keys.json")
    assert ring.lookup("k3") is not None


def test_a_variable_that_holds_no_key_is_refused_too() -> None:
    with pytest.raises(FailedPrecondition, match="EMBEDSERVE_API_KEYS holds no key"):
        load_keys(AuthSettings(api_keys="# k1 admin;"))
    assert len(load_keys(AuthSettings(api_keys="  "))) == 0  # blank: not set, auth off


def test_serve_refuses_a_keyless_file_before_it_listens(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# every key to come\n")
    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    paths = os.pathsep.join(str(repo / root) for root in ("server", "connectors", "clients/python"))
    env = dict(os.environ, PYTHONPATH=paths, EMBEDSERVE_MODEL="minilm", HF_HUB_OFFLINE="1")
    command = [*CLI, "serve", "--port", str(port), "--http-port", "0"]
    command += ["--api-keys-file", str(keys), "--data-dir", str(tmp_path / "data")]
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stderr=output, stdout=output)
    try:
        code = process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("embedserve serve ran with a keys file that holds no key")
    stderr = log.read_text()
    assert code == 2, stderr
    assert f"api keys file {keys} holds no key, which would turn auth off" in stderr
    assert "listening" not in stderr
