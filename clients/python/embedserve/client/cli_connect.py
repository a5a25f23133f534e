"""How every client verb of the command line reaches the server: ``--target``, the API
key and TLS files from the environment, and one mapping of failures to exit codes."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format

from embedserve.client._connection import DEFAULT_TARGET
from embedserve.client._documents import query_filter
from embedserve.client._sync import EmbedClient
from embedserve.client.cli_lines import lone_surrogate

ENV_PREFIX = "EMBEDSERVE_"
# The variables the client verbs read (after the prefix); the server's are its settings.
CLIENT_VARIABLES = (
    *("TARGET", "API_KEY", "TLS_CA", "TLS_CLIENT_CERT", "TLS_CLIENT_KEY", "TLS_SERVER_NAME"),
)
# Texts a request carries unless --batch-size says otherwise (the server takes 2,048).
BATCH_SIZE = 64

ClientVerb = Callable[[EmbedClient, argparse.Namespace], int | None]
Run = Callable[[argparse.Namespace], int]


def add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        # Empty is unset, as for the API key: `EMBEDSERVE_TARGET= embedserve ...` is no host.
        default=os.environ.get(ENV_PREFIX + "TARGET") or DEFAULT_TARGET,
        help=f"host:port of the server (env {ENV_PREFIX}TARGET; default {DEFAULT_TARGET})",
    )


def security_from_env() -> dict[str, Any]:
    """Key and TLS for client commands, from the environment only (keys stay out of ``ps``).

    EMBEDSERVE_API_KEY; EMBEDSERVE_TLS_CA (PEM file: use TLS, trusting it), for mutual
    TLS EMBEDSERVE_TLS_CLIENT_CERT and EMBEDSERVE_TLS_CLIENT_KEY, and
    EMBEDSERVE_TLS_SERVER_NAME (the name the certificate carries, where the target's host
    is another).
    """
    options: dict[str, Any] = {}
    cert = os.environ.get(ENV_PREFIX + "TLS_CLIENT_CERT")
    key = os.environ.get(ENV_PREFIX + "TLS_CLIENT_KEY")
    if bool(cert) != bool(key):  # half a pair would go unused, the server asking for both
        given, missing = ("CERT", "KEY") if cert else ("KEY", "CERT")
        raise ValueError(
            f"{ENV_PREFIX}TLS_CLIENT_{given} is set without {ENV_PREFIX}TLS_CLIENT_{missing}: "
            "mutual TLS needs both"
        )
    api_key = os.environ.get(ENV_PREFIX + "API_KEY")
    if api_key:
        options["api_key"] = api_key
    ca = os.environ.get(ENV_PREFIX + "TLS_CA")
    if ca:
        with open(ca, "rb") as file:
            root = file.read()
        chain = private = None
        if cert and key:
            with open(cert, "rb") as file:
                chain = file.read()
            with open(key, "rb") as file:
                private = file.read()
        options["credentials"] = grpc.ssl_channel_credentials(root, private, chain)
        options["server_name"] = os.environ.get(ENV_PREFIX + "TLS_SERVER_NAME") or None
    return options


def output_path(text: str) -> str:
    """An argparse type for files to write: an empty name is refused, naming the flag."""
    if not text:
        raise argparse.ArgumentTypeError("a file name expected ('-': standard output)")
    return text


def positive_int(text: str) -> int:
    """An argparse type for counts and sizes: a whole number from 1 to 2**32 - 1, refused
    before any call with an error that names the flag (the server's, or protobuf's "Value
    out of range", named none)."""
    return _uint32(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type for seeds and counts that may be 0: a whole number from 0 to
    2**32 - 1, what the Cluster RPC and the projections take."""
    return _uint32(text, 0)


# The most documents the server hands out in one page of a scroll (past it the server's
# error named only "limit").
MAX_PAGE_SIZE = 10_000


U32_MAX = 2**32 - 1


def int_from(least: int, most: int = U32_MAX) -> Callable[[str], int]:
    """An argparse type: a whole number from ``least`` to ``most``."""
    return functools.partial(_uint32, least=least, most=most)


def _uint32(text: str, least: int, most: int = U32_MAX) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number expected, got {text!r}") from None
    if not least <= value <= most:
        top = "2**32 - 1" if most == U32_MAX else str(most)
        raise argparse.ArgumentTypeError(f"must be from {least} to {top}, got {value}")
    return value


def filter_arg(text: str | None) -> dict[str, Any] | None:
    """``--filter``: the JSON form of a Filter message, checked before any call."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--filter: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError('--filter: a JSON object expected, like {"must": [...]}')
    if (problem := lone_surrogate(value)) is not None:
        raise ValueError(f"--filter: {problem}")
    try:
        query_filter(value)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0].removeprefix("filter: ")  # the client's own prefix
        raise ValueError(f"--filter: not a filter ({first})") from None
    return value


def client_verb(verb: ClientVerb) -> Run:
    """A verb that talks to the server at ``--target``. Exit codes: the verb's own (None is
    0); 1 when the server answers with an error; 2 for a bad input or file."""

    @functools.wraps(verb)
    def run(args: argparse.Namespace) -> int:
        try:
            client = EmbedClient(args.target, **security_from_env())
            try:
                code = verb(client, args) or 0
            except KeyboardInterrupt:
                # The channel stays open: closing it waits for every call in flight to end,
                # and a call that Ctrl-C broke off may never end (grpc/grpc#19973). main()
                # leaves the process at once.
                raise
            except BaseException:
                client.close()
                raise
            client.close()
            return code
        except grpc.RpcError as exc:
            print(f"embedserve: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
        except BrokenPipeError:
            raise  # the reader of stdout left: main() ends quietly, as a pipe's writer should
        except (ValueError, KeyError, OSError) as exc:
            print(f"embedserve: {exc}", file=sys.stderr)
            return 2

    return run
