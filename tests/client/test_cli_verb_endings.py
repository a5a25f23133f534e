"""How a command-line verb leaves its client: closed once the verb ends, by an answer or an
error, and left open on Ctrl-C, whose exit must not wait on calls that the interrupt broke
off (grpc/grpc#19973, #20026: a reembed interrupted mid-stream was seen to hang in it). A
signal landing at that instant cannot be arranged, so the closes are recorded instead."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli_connect import client_verb


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[EmbedClient]:
    """The clients closed, in order."""
    closed: list[EmbedClient] = []

    def close(self: EmbedClient, _real: Any = EmbedClient.close) -> None:
        closed.append(self)
        _real(self)

    monkeypatch.setattr(EmbedClient, "close", close)
    return closed


def run_verb(verb: Any) -> int:
    return client_verb(verb)(argparse.Namespace(target="127.0.0.1:1"))


def test_the_client_is_closed_when_the_verb_answers_or_fails(closes: list[EmbedClient]) -> None:
    used: list[EmbedClient] = []

    def answered(client: EmbedClient, args: argparse.Namespace) -> int:
        used.append(client)
        return 3

    def refused(client: EmbedClient, args: argparse.Namespace) -> int:
        used.append(client)
        raise ValueError("--limit must be positive")

    assert run_verb(answered) == 3
    assert run_verb(refused) == 2
    assert closes == used


def test_ctrl_c_leaves_the_client_open_for_main_to_exit_at_once(closes: list[EmbedClient]) -> None:
    def interrupted(client: EmbedClient, args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_verb(interrupted)
    assert closes == []
