"""The transport-free rerank API: a query and its candidate documents, scored together by
the served cross-encoder and returned best first.

Torch-free: the model behind ``PairScorer`` is ``reranker_model.RerankerModel``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import enum
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedserve.server.batch_cost import CALIBRATION_TEXT, PassCost, calibrate_logged
from embedserve.server.batcher import Batcher
from embedserve.server.embedder import RequestLimits, Timings
from embedserve.server.errors import DeadlineExpired, FailedPrecondition, InvalidArgument
from embedserve.server.tokenization import Overflow
from embedserve.server.windows import FloatArray, Window

# Documents tokenized per job of the tokenizer thread.
TOKENIZE_SLICE = 128


class Activation(enum.Enum):
    """What turns the model's logit into its score (sentence-transformers' activation_fn)."""

    SIGMOID = "torch.nn.modules.activation.Sigmoid"
    IDENTITY = "torch.nn.modules.linear.Identity"
    TANH = "torch.nn.modules.activation.Tanh"

    def apply(self, logits: FloatArray) -> FloatArray:
        if self is Activation.SIGMOID:
            return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)
        if self is Activation.TANH:
            return np.tanh(logits).astype(np.float32)
        return logits


@dataclasses.dataclass(frozen=True)
class RerankerSpec:
    reranker_id: str
    path: Path
    max_tokens: int  # of one (query, document) pair, special tokens included
    activation: Activation
    query_prompt: str = ""  # put before each query, as CrossEncoder puts its default prompt


class PairScorer(Protocol):
    """What the core needs of a reranker: its settings, tokenizer and one batch step."""

    spec: RerankerSpec
    tokenizer: Any  # a transformers fast tokenizer
    model_type: str

    @property
    def device(self) -> object:
        """Where it runs (shown as text, e.g. ``cpu`` or ``cuda:0``)."""
        ...

    def compute(self, windows: Sequence[Window]) -> list[FloatArray]:
        """Each window's raw logit (a 1-element array), in order; on the model thread."""
        ...


@dataclasses.dataclass(frozen=True)
class RerankParams:
    top_n: int = 0  # the best N; 0: every document
    raw_scores: bool = False  # the model's logits, without its activation
    overflow: Overflow = Overflow.TRUNCATE_RIGHT


@dataclasses.dataclass(frozen=True)
class RankedDocument:
    index: int  # of the document in the request
    score: float
    token_count: int  # tokens of the pair (every window's under CHUNK)
    truncated: bool


@dataclasses.dataclass
class RerankResult:
    ranked: list[RankedDocument]  # best first
    total_tokens: int  # of every pair, including those top_n left out
    timings: Timings


@dataclasses.dataclass(frozen=True)
class _Pair:
    windows: tuple[Window, ...]
    token_count: int
    truncated: bool


class Reranker:
    def __init__(
        self,
        model: PairScorer,
        batcher: Batcher,
        tokenize_executor: Executor,
        limits: RequestLimits,
        chunk_overlap_tokens: int,
    ) -> None:
        self.model = model
        self.batcher = batcher
        self.limits = limits
        self._tokenize_executor = tokenize_executor
        self._overlap = chunk_overlap_tokens
        # TRUNCATE_LEFT cuts with a copy that truncates on the left: the tokenizer's side
        # is its own state, and one tokenizer thread shares it.
        self._left = copy.deepcopy(model.tokenizer)
        self._left.truncation_side = "left"

    def validate(
        self,
        query: str,
        documents: Sequence[str],
        params: RerankParams,
        field: str,
        requested: bool = True,
    ) -> None:
        """``requested``: the documents came in the request, and its limits apply to them
        (not to the stored texts of a search's hits, which a search's own bounds limit)."""
        if not query:
            raise InvalidArgument("query is empty")
        if not documents:
            raise InvalidArgument(f"{field} must not be empty")
        # The query is tokenized with each document: a long one, sent once, cost as much
        # tokenizing as a thousand large requests (as a free prompt did before each input).
        repeated = len(query) * len(documents)
        if repeated > self.limits.max_message_bytes:
            raise InvalidArgument(
                f"the query, read with each of the {len(documents)} documents, makes "
                f"{repeated} characters to tokenize, more than one request may carry "
                f"({self.limits.max_message_bytes}, max_message_bytes): send a shorter "
                "query or fewer documents"
            )
        if not requested:
            return
        if len(documents) > self.limits.max_inputs_per_request:
            raise InvalidArgument(
                f"{field} has {len(documents)} items; the limit is "
                f"{self.limits.max_inputs_per_request} per request (max_inputs_per_request)"
            )
        chars = self.limits.max_input_chars
        for name, text in [("query", query)] + [
            (f"{field}[{i}]", doc) for i, doc in enumerate(documents)
        ]:
            if not text:
                raise InvalidArgument(f"{name} is empty")
            if len(text) > chars:
                raise InvalidArgument(
                    f"{name} has {len(text)} characters; the limit is {chars} (max_input_chars)"
                )
        if params.top_n < 0:
            raise InvalidArgument(f"top_n must be 0 (every document) or more; got {params.top_n}")

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        params: RerankParams,
        deadline: float | None = None,
        field: str = "documents",
        requested: bool = True,
    ) -> RerankResult:
        """The documents by their score against ``query``, best first (ties by position).
        Under CHUNK a long document is read in overlapping windows and scores its best.
        ``field``: where the request keeps the documents, for error messages;
        ``requested``: see ``validate``. Each distinct text is read once: a pair's score
        shifts in the last digits with the batch it lands in, so equal documents read
        apart could order otherwise than by position."""
        started = time.monotonic()
        self.validate(query, documents, params, field, requested)
        first_at: dict[str, int] = {}
        for index, document in enumerate(documents):
            first_at.setdefault(document, index)
        distinct = list(first_at)
        names = [f"{field}[{index}]" for index in first_at.values()]
        loop = asyncio.get_running_loop()
        prompted = self.model.spec.query_prompt + query
        read: list[_Pair] = []
        # In slices: a call given up stops between them (2,048 long documents took seconds
        # of the tokenizer thread, every Embed waiting behind them), and other calls' texts
        # get the thread in between.
        for start in range(0, len(distinct), TOKENIZE_SLICE):
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExpired("deadline expired while tokenizing")
            end = start + TOKENIZE_SLICE
            read += await loop.run_in_executor(
                self._tokenize_executor,
                self._tokenize,
                prompted,
                distinct[start:end],
                params,
                names[start:end],
            )
        by_text = dict(zip(distinct, read, strict=True))
        pairs = [by_text[document] for document in documents]
        timings = Timings(tokenize_ms=(time.monotonic() - started) * 1000.0)
        windows = [window for pair in read for window in pair.windows]
        futures = self.batcher.submit(windows, deadline)
        try:
            results = list(await asyncio.gather(*futures))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        timings.absorb(results)
        logits = np.array([float(result.vector[0]) for result in results], dtype=np.float32)
        scores = logits if params.raw_scores else self.model.spec.activation.apply(logits)
        best: dict[str, float] = {}
        position = 0
        for text, pair in by_text.items():
            best[text] = float(scores[position : position + len(pair.windows)].max())
            position += len(pair.windows)
        ranked = [
            RankedDocument(index, best[document], pair.token_count, pair.truncated)
            for index, (document, pair) in enumerate(zip(documents, pairs, strict=True))
        ]
        ranked.sort(key=lambda doc: (-doc.score, doc.index))
        if params.top_n:
            ranked = ranked[: params.top_n]
        timings.total_ms = (time.monotonic() - started) * 1000.0
        return RerankResult(ranked, sum(pair.token_count for pair in pairs), timings)

    def _tokenize(
        self, query: str, documents: list[str], params: RerankParams, names: list[str]
    ) -> list[_Pair]:
        """Each (query, document) pair as the model reads it, on the tokenizer thread;
        ``names``: where the request holds each document, for errors."""
        overflow = params.overflow
        tokenizer = self.model.tokenizer
        limit = self.model.spec.max_tokens
        whole = tokenizer([query] * len(documents), documents, truncation=False)
        # Under CHUNK a window holds the whole query: what is left is the document's.
        room = self._document_room(query) if overflow is Overflow.CHUNK else 0
        pairs: list[_Pair] = []
        for index, ids in enumerate(whole["input_ids"]):
            if len(ids) <= limit:
                pairs.append(_Pair((_window(whole, index),), len(ids), False))
            elif overflow is Overflow.ERROR:
                raise InvalidArgument(
                    f"{names[index]} with the query is {len(ids)} tokens; the reranker "
                    f"reads at most {limit} (reranker_max_tokens); shorten it or let it be "
                    "truncated"
                )
            elif overflow is Overflow.CHUNK:
                pairs.append(self._chunked(query, documents[index], room, names[index]))
            else:
                cut = self._left if overflow is Overflow.TRUNCATE_LEFT else tokenizer
                one = cut(query, documents[index], truncation="longest_first", max_length=limit)
                pairs.append(_Pair((_window(one, None),), len(one["input_ids"]), True))
        return pairs

    def _document_room(self, query: str) -> int:
        """Tokens a pair has for its document beside the whole of ``query``."""
        tokenizer = self.model.tokenizer
        return int(
            self.model.spec.max_tokens
            - len(tokenizer(query)["input_ids"])
            - tokenizer.num_special_tokens_to_add(pair=True)
            + tokenizer.num_special_tokens_to_add(pair=False)
        )

    def _chunked(self, query: str, document: str, room: int, name: str) -> _Pair:
        tokenizer = self.model.tokenizer
        limit = self.model.spec.max_tokens
        # A window moves on by at least half its document's room: a query that left a
        # token or two read a 2,700-token document as 2,700 windows of the whole limit.
        least = max(2, limit // 4)
        if room < least:
            raise InvalidArgument(
                f"the query leaves {max(room, 0)} of the reranker's {limit} tokens for "
                f"{name}; under CHUNK each window holds the whole query and at least a "
                f"quarter of them ({least}) of the document: shorten the query, or truncate "
                "the document instead"
            )
        windows = tokenizer(
            query,
            document,
            truncation="only_second",
            max_length=limit,
            stride=min(self._overlap, room // 2),
            return_overflowing_tokens=True,
        )
        count = len(windows["input_ids"])
        chunks = tuple(_window(windows, row) for row in range(count))
        return _Pair(chunks, sum(len(w.ids) for w in chunks), False)


def _window(encoding: Any, row: int | None) -> Window:
    """Row ``row`` of a batch encoding (None: an encoding of one pair) as a Window; its
    second text starts at the first token of type 1."""
    ids = encoding["input_ids"] if row is None else encoding["input_ids"][row]
    types = encoding.get("token_type_ids")
    types = None if types is None else types if row is None else types[row]
    second = types.index(1) if types is not None and 1 in types else 0
    return Window(tuple(ids), pooling=None, second_start=second)


def calibrate_reranker(model: PairScorer, stop: threading.Event | None = None) -> PassCost | None:
    """The reranker's pass-cost line, timed on token ids of its own vocabulary."""
    pool = sorted(set(model.tokenizer(CALIBRATION_TEXT)["input_ids"]))
    return calibrate_logged(
        model.compute, pool, model.spec.max_tokens, model.device, "reranker", stop
    )


def no_reranker() -> FailedPrecondition:
    return FailedPrecondition(
        "this server runs no reranker; start it with --reranker (a cross-encoder's hub id "
        "or folder) to use Rerank"
    )
