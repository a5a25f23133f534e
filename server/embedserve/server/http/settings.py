"""The HTTP section of the settings."""

from __future__ import annotations

import dataclasses

# What /v1/embeddings does with token ids for input. OpenAI's clients send ids of OpenAI's
# tokenizer (LangChain's OpenAIEmbeddings does by default), which no served model shares:
# embedded as this model's ids they give wrong vectors, so by default they are refused.
OPENAI_TOKEN_IDS = ("refuse", "model")


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    # HTTP/1.1 JSON API (OpenAI-compatible and REST) on the gRPC port's host; 0: off.
    http_port: int = 8080
    # refuse: token-id input on /v1/embeddings is a 400 naming the fix; model: the ids are
    # the served model's own (as its tokenizer and /tokenize give them).
    openai_token_ids: str = "refuse"
    # Browser pages on these origins may call the API (comma-separated, or "*"); empty: none.
    cors_allow_origins: str = ""
    # A request body that sends nothing for this long before its answer begins is dropped:
    # the connection closed, the call CANCELLED. 0: never. (A stream's answer begins at once.)
    http_body_idle_s: float = 60.0

    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]
