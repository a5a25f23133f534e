"""``embedserve`` command line: serve and finetune, and the client package's verbs (they
call a running server)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from embedserve.client import cli as client_cli
from embedserve.client.cli_connect import CLIENT_VARIABLES
from embedserve.server.config import ENV_PREFIX, Settings, misspelt_variables
from embedserve.server.finetune import command as finetune_command

# Secrets: a flag would show them in the process list; environment (or a file) only.
ENV_ONLY = frozenset({"api_keys"})


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; unset flags fall back to EMBEDSERVE_* and then defaults."""
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        if field.name in ENV_ONLY:
            continue
        default = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        env = ENV_PREFIX + field.name.upper()
        help_text = f"env {env}; default {default!r}"
        if isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag, dest=field.name, type=type(default), default=None, help=help_text
            )


def add_parser(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the server: gRPC, and HTTP on --http-port")
    _add_settings_flags(serve)
    serve.set_defaults(run=_serve)


def build_parser() -> argparse.ArgumentParser:
    """``serve`` (and any other server verbs: one ``module.add_parser`` each) on top of the
    client package's verbs."""
    return client_cli.build_parser(add_parser, finetune_command.add_parser, description=__doc__)


def main(argv: Sequence[str] | None = None) -> int:
    return client_cli.main(argv, build_parser())


def settings_from(args: argparse.Namespace) -> Settings:
    """Defaults, then EMBEDSERVE_* variables, then the flags ``serve`` was given."""
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Settings)
        if f.name not in ENV_ONLY
    }
    return Settings.from_sources(overrides=overrides)


def _serve(args: argparse.Namespace) -> int:
    # Until the server listens there is nothing to drain: Ctrl-C then ends the process at
    # once, as SIGTERM does (as KeyboardInterrupt it broke off imports, and grpc logged
    # "invalid state"). Once listening, the event loop's handlers drain instead.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    from embedserve.server import logs
    from embedserve.server.errors import EmbedServeError

    try:
        settings = settings_from(args)
        logs.configure(settings.section(logs.LogSettings))
    except ValueError as exc:
        print(f"embedserve: {exc}", file=sys.stderr)
        return 2
    for line in misspelt_variables(os.environ, CLIENT_VARIABLES):
        logging.getLogger(__name__).warning("%s", line)
    try:
        asyncio.run(_run_server(settings))
    except EmbedServeError as exc:
        print(f"embedserve: {exc.message}", file=sys.stderr)
        return 2
    return 0


async def _run_server(settings: Settings) -> None:
    from embedserve.server.app import EmbedServer

    server = EmbedServer(settings)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    ready = asyncio.ensure_future(server.wait_ready())
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and ready.exception() is not None:
        await server.stop(0)
        raise ready.exception()  # type: ignore[misc]
    await stop
    logging.getLogger(__name__).info("shutting down (grace %.1f s)", settings.grace_period_s)
    await server.stop()


if __name__ == "__main__":
    sys.exit(main())
