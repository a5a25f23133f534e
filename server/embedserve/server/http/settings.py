"""The HTTP section of the settings."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    # HTTP/1.1 JSON API (OpenAI-compatible and REST) on the gRPC port's host; 0: off.
    http_port: int = 8080
