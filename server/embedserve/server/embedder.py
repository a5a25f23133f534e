"""The transport-free embedding API: validation, prompts, tokenising, batching, post-processing."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor

import numpy as np

from embedserve.server.batcher import Batcher, Priority, WindowResult
from embedserve.server.errors import InvalidArgument
from embedserve.server.input_names import InputNames
from embedserve.server.model_spec import PoolingMode
from embedserve.server.passages import PassageSplit
from embedserve.server.precision import ByteArray, Precision, quantize
from embedserve.server.query_cache import QueryCache
from embedserve.server.tokenization import Overflow, TokenDetail, TokenizedText
from embedserve.server.tokenize_queue import TokenizeQueue
from embedserve.server.windows import Encoder, FloatArray, Window


class Task(enum.Enum):
    DEFAULT = "default"
    QUERY = "query"
    DOCUMENT = "document"
    NONE = "none"


# Bytes of an EmbedTokens answer per token besides its floats (the token, its id, offsets
# and framing): about 22 measured for English text, rounded up.
TOKEN_ANSWER_OVERHEAD_BYTES = 32

_PROMPT_NAMES = {
    Task.QUERY: ("query", "search_query", "Query"),
    Task.DOCUMENT: ("document", "search_document", "passage", "doc", "corpus", "Document"),
}


@dataclasses.dataclass(frozen=True)
class EmbedParams:
    task: Task = Task.DEFAULT
    prompt: str | None = None
    dimensions: int | None = None
    pooling: PoolingMode | None = None
    normalize: bool | None = None
    overflow: Overflow = Overflow.TRUNCATE_RIGHT
    # The batcher's lane; None: the call's own (bulk for writes and embed streams).
    priority: Priority | None = None


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """The request-limits section of the settings: inputs and characters are checked here,
    message bytes by both transports before decoding work starts."""

    max_inputs_per_request: int = 2048
    max_input_chars: int = 1_000_000
    max_message_bytes: int = 64 * 1024 * 1024


@dataclasses.dataclass
class Timings:
    queue_ms: float = 0.0
    tokenize_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0

    def merge(self, other: Timings) -> None:
        """Keep the larger of each figure: parts of one call run side by side."""
        self.queue_ms = max(self.queue_ms, other.queue_ms)
        self.tokenize_ms = max(self.tokenize_ms, other.tokenize_ms)
        self.inference_ms = max(self.inference_ms, other.inference_ms)
        self.total_ms = max(self.total_ms, other.total_ms)

    def absorb(self, results: Sequence[WindowResult]) -> None:
        for result in results:
            self.queue_ms = max(self.queue_ms, result.queue_s * 1000.0)
            self.inference_ms = max(self.inference_ms, result.inference_s * 1000.0)


@dataclasses.dataclass
class EmbedResult:
    vectors: FloatArray  # (inputs, dimensions)
    token_counts: list[int]
    truncated: list[bool]
    chunk_counts: list[int]
    timings: Timings

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)

    def vectors_in(self, precision: Precision) -> FloatArray | ByteArray:
        """The vectors as they are, or in ``precision``'s fewer bits."""
        return self.vectors if precision is Precision.FLOAT32 else quantize(self.vectors, precision)

    def rows(
        self, precision: Precision = Precision.FLOAT32
    ) -> Iterator[tuple[list[float] | list[int], int, bool, int]]:
        """Per input: its vector, token count, truncation flag and chunk count."""
        return zip(
            self.vectors_in(precision).tolist(),
            self.token_counts,
            self.truncated,
            self.chunk_counts,
            strict=True,
        )


@dataclasses.dataclass
class TokenVectorsResult:
    details: list[TokenDetail]
    vectors: list[FloatArray]  # (tokens, dimensions) per input
    truncated: list[bool]
    timings: Timings


class Embedder:
    def __init__(
        self,
        model: Encoder,
        batcher: Batcher,
        tokenize_executor: Executor,
        limits: RequestLimits,
        cache: QueryCache | None = None,
    ) -> None:
        self.model = model
        self.batcher = batcher
        self.limits = limits
        self._cache = cache
        self._tokenize_executor = tokenize_executor
        # Embed's tokenising, the hot path of many small requests, goes over in bursts.
        self._tokenizing = TokenizeQueue(tokenize_executor)

    # -- validation and options -------------------------------------------------

    def validate_inputs(self, inputs: Sequence[str], field: str | InputNames = "inputs") -> None:
        names = InputNames.of(field)
        self._check_count(len(inputs), field)
        for index, text in enumerate(inputs):
            if not text:
                raise InvalidArgument(f"{names.item(index)} is empty")
            if len(text) > self.limits.max_input_chars:
                raise InvalidArgument(
                    f"{names.item(index)} has {len(text)} characters; the limit is "
                    f"{self.limits.max_input_chars} (max_input_chars)"
                )

    def validate_params(
        self, params: EmbedParams, field: str = "options", width: int | None = None
    ) -> None:
        """``field``: where the request keeps its options ("" where they are top-level);
        ``width``: the vectors' (default: the model's embeddings')."""
        width = width or self.model.dimensions
        if params.dimensions is not None and not 1 <= params.dimensions <= width:
            where = f"{field}.dimensions" if field else "dimensions"
            raise InvalidArgument(
                f"{where} must be between 1 and {width} (the model's width); "
                f"got {params.dimensions}"
            )

    def _check_prompt(self, prompt: str, inputs: Sequence[str], options_field: str) -> None:
        """The prompt is tokenized with each input: a long one, sent once, would make a
        small request cost as much tokenizing as a thousand large ones. Bounded like an
        input, and the request with it before every input like what one message carries."""
        if not prompt:
            return
        where = f"{options_field}.prompt" if options_field else "prompt"
        limits = self.limits
        if len(prompt) > limits.max_input_chars:
            raise InvalidArgument(
                f"{where} has {len(prompt)} characters; the limit is "
                f"{limits.max_input_chars} (max_input_chars)"
            )
        total = len(prompt) * len(inputs) + sum(map(len, inputs))
        if total > limits.max_message_bytes:
            raise InvalidArgument(
                f"{where} before each of the {len(inputs)} inputs makes {total} characters to "
                f"tokenize, more than one request may carry ({limits.max_message_bytes}, "
                "max_message_bytes): send fewer inputs per request or a shorter prompt"
            )

    def prompt_for(self, task: Task, prompt: str | None) -> str:
        """The prompt string to prepend: explicit, by task, or the model's default."""
        if prompt is not None:
            return prompt
        prompts = self.model.spec.prompts
        if task is Task.NONE:
            return ""
        if task is Task.DEFAULT:
            name = self.model.spec.default_prompt_name
            return prompts.get(name, "") if name else ""
        # A model without a prompt for this task gets none: the task is a hint, not a demand.
        return next((prompts[n] for n in _PROMPT_NAMES[task] if n in prompts), "")

    async def passage_spans(
        self, texts: Sequence[str], split: PassageSplit, params: EmbedParams, field: str
    ) -> list[list[tuple[int, int]]]:
        """Each text's passages as character spans, sized for the prompt ``params`` picks."""
        tokenizer = self.model.tokenizer
        room = tokenizer.text_room(self.prompt_for(params.task, params.prompt))
        size, overlap = split.resolved(room, field)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._tokenize_executor,
            lambda: [tokenizer.passage_spans(text, size, overlap) for text in texts],
        )

    # -- embedding -------------------------------------------------------------

    async def _tokenize(
        self, inputs: Sequence[str], prompt: str, overflow: Overflow, field: str | InputNames
    ) -> tuple[list[TokenizedText], float]:
        started = time.monotonic()
        encode = self.model.tokenizer.encode
        tokenized: list[TokenizedText] = await self._tokenizing.run(
            lambda: encode(inputs, prompt, overflow, field)
        )
        return tokenized, (time.monotonic() - started) * 1000.0

    async def embed(
        self,
        inputs: Sequence[str],
        params: EmbedParams,
        deadline: float | None = None,
        wait_for_room: bool = False,
        field: str | InputNames = "inputs",
        options_field: str = "options",
        priority: Priority = Priority.INTERACTIVE,
        cached: bool = True,
    ) -> EmbedResult:
        """Embed inputs in order. Streams wait for queue room; unary calls fail fast.
        ``field`` and ``options_field`` name the inputs and options in error messages;
        ``priority`` is the call's lane unless ``params`` names one; ``cached``: false
        for documents to write, which never go through the query cache."""
        started = time.monotonic()
        self.validate_inputs(inputs, field)
        self.validate_params(params, options_field)
        prompt = self.prompt_for(params.task, params.prompt)
        self._check_prompt(prompt, inputs, options_field)
        tokenized, tokenize_ms = await self._tokenize(inputs, prompt, params.overflow, field)
        lane = _lane(params, priority)
        return await self._embed_tokenized(
            tokenized, tokenize_ms, params, deadline, wait_for_room, started, lane, cached
        )

    async def embed_token_ids(
        self,
        id_lists: Sequence[Sequence[int]],
        params: EmbedParams,
        deadline: float | None = None,
        field: str | InputNames = "input",
        options_field: str = "options",
    ) -> EmbedResult:
        """Embed inputs already given as token ids (without the model's special tokens)."""
        started = time.monotonic()
        self._validate_id_lists(id_lists, field)
        self.validate_params(params, options_field)
        prompt = self.prompt_for(params.task, params.prompt)
        self._check_prompt(prompt, [], options_field)  # tokenized once here: its length only
        loop = asyncio.get_running_loop()
        tokenized = await loop.run_in_executor(
            self._tokenize_executor,
            self.model.tokenizer.encode_ids,
            id_lists,
            prompt,
            params.overflow,
            field,
        )
        tokenize_ms = (time.monotonic() - started) * 1000.0
        lane = _lane(params, Priority.INTERACTIVE)
        return await self._embed_tokenized(
            tokenized, tokenize_ms, params, deadline, False, started, lane
        )

    def _check_count(self, count: int, field: str | InputNames) -> None:
        """A request's inputs: at least one, at most the request limit."""
        if not count:
            raise InvalidArgument(f"{field} must not be empty")
        if count > self.limits.max_inputs_per_request:
            raise InvalidArgument(
                f"{field} has {count} items; the limit is "
                f"{self.limits.max_inputs_per_request} per request (max_inputs_per_request)"
            )

    def _validate_id_lists(
        self, id_lists: Sequence[Sequence[int]], field: str | InputNames
    ) -> None:
        self._check_count(len(id_lists), field)
        names = InputNames.of(field)
        for index, ids in enumerate(id_lists):
            if not ids:
                raise InvalidArgument(f"{names.item(index)} is empty")

    async def decode(
        self, id_lists: Sequence[Sequence[int]], skip_special: bool, field: str | InputNames = "ids"
    ) -> list[str]:
        """The text each list of the model's token ids stands for."""
        self._validate_id_lists(id_lists, field)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._tokenize_executor, self.model.tokenizer.decode, id_lists, skip_special, field
        )

    async def _embed_tokenized(
        self,
        tokenized: list[TokenizedText],
        tokenize_ms: float,
        params: EmbedParams,
        deadline: float | None,
        wait_for_room: bool,
        started: float,
        priority: Priority,
        cached: bool = True,
    ) -> EmbedResult:
        pooling = params.pooling or self.model.spec.pooling
        windows = [
            Window(ids, text.pool_start, pooling) for text in tokenized for ids in text.windows
        ]
        results = await self._run(windows, deadline, wait_for_room, priority, cached)
        timings = Timings(tokenize_ms=tokenize_ms)
        timings.absorb(results)
        vectors = self._assemble(tokenized, results, params)
        timings.total_ms = (time.monotonic() - started) * 1000.0
        return EmbedResult(
            vectors=vectors,
            token_counts=[text.token_count for text in tokenized],
            truncated=[text.truncated for text in tokenized],
            chunk_counts=[len(text.windows) for text in tokenized],
            timings=timings,
        )

    async def _run(
        self,
        windows: list[Window],
        deadline: float | None,
        wait_for_room: bool,
        priority: Priority,
        cached: bool = True,
    ) -> list[WindowResult]:
        cache = self._cache
        if cache is None or not cached or priority is Priority.BULK:  # documents rarely repeat
            return await self._compute(windows, deadline, wait_for_room, priority)
        known = [cache.get(window) for window in windows]
        missing = [window for window, vector in zip(windows, known, strict=True) if vector is None]
        computed = iter(await self._compute(missing, deadline, wait_for_room, priority))
        results = []
        for window, vector in zip(windows, known, strict=True):
            if vector is None:
                result = next(computed)
                cache.put(window, result.vector)
                results.append(result)
            else:
                results.append(WindowResult(vector, 0.0, 0.0))
        return results

    async def _compute(
        self,
        windows: list[Window],
        deadline: float | None,
        wait_for_room: bool,
        priority: Priority,
    ) -> list[WindowResult]:
        if not windows:
            return []
        if wait_for_room:
            futures = await self.batcher.submit_when_room(windows, deadline, priority)
        else:
            futures = self.batcher.submit(windows, deadline, priority)
        try:
            if len(futures) == 1:  # one text: no gathering future
                return [await futures[0]]
            return list(await asyncio.gather(*futures))
        except BaseException:
            # Caller gone or a batch failed: drop whatever has not been computed yet.
            for future in futures:
                future.cancel()
            raise

    def _assemble(
        self, tokenized: list[TokenizedText], results: list[WindowResult], params: EmbedParams
    ) -> FloatArray:
        width = params.dimensions or self.model.dimensions
        normalize = self.model.spec.normalize if params.normalize is None else params.normalize
        out = np.empty((len(tokenized), width), dtype=np.float32)
        position = 0
        for row, text in enumerate(tokenized):
            count = len(text.windows)
            if count == 1:
                vector = results[position].vector
            else:  # CHUNK: windows pooled by their token counts into one vector
                weights = np.array([len(ids) for ids in text.windows], dtype=np.float32)
                stacked = np.stack([r.vector for r in results[position : position + count]])
                vector = (weights[:, None] * stacked).sum(axis=0) / weights.sum()
            position += count
            out[row] = vector[:width]
        if normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)
        return out

    async def embed_tokens(
        self, inputs: Sequence[str], params: EmbedParams, deadline: float | None = None
    ) -> TokenVectorsResult:
        started = time.monotonic()
        self.validate_inputs(inputs)
        # Token vectors are the encoder's, of its width: a Dense layer maps only the pooled one.
        self.validate_params(params, width=self.model.token_dimensions)
        if params.overflow is Overflow.CHUNK:
            raise InvalidArgument("options.overflow CHUNK is not available for token vectors")
        prompt = self.prompt_for(params.task, params.prompt)
        self._check_prompt(prompt, inputs, "options")
        tokenized, tokenize_ms = await self._tokenize(inputs, prompt, params.overflow, "inputs")
        width = params.dimensions or self.model.token_dimensions
        self._check_answer_size(sum(len(text.windows[0]) for text in tokenized), width)
        lane = _lane(params, Priority.INTERACTIVE)
        windows = [Window(text.windows[0], 0, None) for text in tokenized]
        results = await self._run(windows, deadline, False, lane)
        loop = asyncio.get_running_loop()
        details = await loop.run_in_executor(self._tokenize_executor, self._details, inputs, prompt)
        normalize = self.model.spec.normalize if params.normalize is None else params.normalize
        vectors: list[FloatArray] = []
        for index, (text, result) in enumerate(zip(tokenized, results, strict=True)):
            matrix = np.ascontiguousarray(result.vector[:, :width], dtype=np.float32)
            if normalize:  # into a new array: equal windows of one batch share their rows
                matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            vectors.append(matrix)
            details[index] = _cut_detail(details[index], text)
        timings = Timings(tokenize_ms=tokenize_ms)
        timings.absorb(results)
        timings.total_ms = (time.monotonic() - started) * 1000.0
        return TokenVectorsResult(details, vectors, [t.truncated for t in tokenized], timings)

    def _check_answer_size(self, tokens: int, width: int) -> None:
        """Refuse, before any model work, token vectors whose answer would pass the message
        limit: the transport would drop it only after the work was done."""
        size = tokens * (4 * width + TOKEN_ANSWER_OVERHEAD_BYTES)
        if size > self.limits.max_message_bytes:
            raise InvalidArgument(
                f"the answer would hold {tokens} token vectors of {width} dimensions, about "
                f"{size} bytes; the limit is {self.limits.max_message_bytes} "
                "(max_message_bytes): send fewer or shorter inputs, or fewer dimensions"
            )

    def _details(self, inputs: Sequence[str], prompt: str) -> list[TokenDetail]:
        return [self.model.tokenizer.details(text, prompt) for text in inputs]

    async def tokenize(
        self, inputs: Sequence[str], task: Task, prompt: str | None
    ) -> list[TokenDetail]:
        self.validate_inputs(inputs)
        text_prompt = self.prompt_for(task, prompt)
        self._check_prompt(text_prompt, inputs, "")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._tokenize_executor, self._details, inputs, text_prompt
        )


def _cut_detail(detail: TokenDetail, text: TokenizedText) -> TokenDetail:
    """Keep only the tokens of the (possibly truncated) window the model saw."""
    full = len(detail.ids)
    start, end = text.body_span
    suffix = len(text.windows[0]) - text.head_len - (end - start)
    keep = [*range(text.head_len), *range(*text.body_span), *range(full - suffix, full)]
    return TokenDetail(
        [detail.ids[i] for i in keep],
        [detail.tokens[i] for i in keep],
        [detail.offsets[i] for i in keep],
        [detail.special[i] for i in keep],
    )


def _lane(params: EmbedParams, default: Priority) -> Priority:
    """The lane ``params`` name, else the call's own."""
    return default if params.priority is None else params.priority
