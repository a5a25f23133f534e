"""Text to model windows: prompt, special tokens and the overflow policy.

The full string (prompt + text) is tokenised once, as sentence-transformers
does, so vectors match the reference exactly whenever an input fits. Only an
over-long input is cut, on the token list: the leading special tokens and the
prompt stay at the front of every window, the trailing specials at its end.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from tokenizers.normalizers import Lowercase
from tokenizers.normalizers import Sequence as NormalizerSequence

from embedserve.server.errors import FailedPrecondition, InvalidArgument
from embedserve.server.input_names import InputNames

_LOWERCASE = Lowercase()


class Overflow(enum.Enum):
    TRUNCATE_RIGHT = "truncate_right"
    TRUNCATE_LEFT = "truncate_left"
    ERROR = "error"
    CHUNK = "chunk"


@dataclasses.dataclass(frozen=True)
class TokenizedText:
    """One input as the model will see it: one window, or several under CHUNK."""

    windows: tuple[tuple[int, ...], ...]
    # Leading tokens left out of pooling (the prompt, for models whose pooling excludes it).
    pool_start: int
    truncated: bool
    # Tokens the input has before any cut (prompt and special tokens included).
    full_token_count: int
    # Leading special and prompt tokens, and the [start, end) of the full sequence that the
    # first window keeps after them: enough to map the window back onto the input's tokens.
    head_len: int
    body_span: tuple[int, int]

    @property
    def token_count(self) -> int:
        return sum(len(window) for window in self.windows)


@dataclasses.dataclass(frozen=True)
class TokenDetail:
    """Token-level view of one input, for Tokenize and EmbedTokens."""

    ids: list[int]
    tokens: list[str]
    # Character spans into the input without its prompt; (0, 0) for special and prompt tokens.
    offsets: list[tuple[int, int]]
    # The tokenizer's own added tokens ([CLS], [SEP], <s>...), not the prompt's or the text's.
    special: list[bool]


class NoRoomForText(ValueError):
    """A window of ``max_tokens`` holds the tokenizer's ``special`` tokens and no text."""

    def __init__(self, special: int) -> None:
        super().__init__("max_tokens leaves no room for text")
        self.special = special


# Characters tokenized at once (a longer input is read whole, alone).
ENCODE_SLICE_CHARS = 1 << 20


def _slices(strings: Sequence[str], budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of ``strings``, each of at most ``budget`` characters (or one
    string, where it alone is longer)."""
    start, held = 0, 0
    for index, string in enumerate(strings):
        if index > start and held + len(string) > budget:
            yield start, index
            start, held = index, 0
        held += len(string)
    if start < len(strings):
        yield start, len(strings)


class TextTokenizer:
    def __init__(
        self,
        hf_tokenizer: Any,
        max_tokens: int,
        include_prompt: bool,
        chunk_overlap_tokens: int,
        lowercase: bool = False,
    ) -> None:
        self._tok = hf_tokenizer
        # sentence-transformers' do_lower_case: a fast tokenizer lowercases in its own
        # normaliser, which runs after it has found the added tokens in the text ("[MASK]"
        # kept whole, as sentence-transformers keeps it); for others, the whole string,
        # prompt too, is lowercased before the tokenizer sees it.
        self._lowercase = lowercase and not lowercase_in_normaliser(hf_tokenizer)
        # The limit is ours to enforce; silence the tokenizer's own warning about long inputs.
        self._tok.model_max_length = 1 << 30
        self.max_tokens = max_tokens
        self._include_prompt = include_prompt
        probe = self._tok("a", add_special_tokens=True, return_special_tokens_mask=True)
        mask = list(probe["special_tokens_mask"])
        # Counted from both ends: "a" is more than one token to some tokenizers.
        self._n_prefix = mask.index(0) if 0 in mask else len(mask)
        self._n_suffix = mask[::-1].index(0) if 0 in mask else 0
        # The special tokens around any text, for inputs given as token ids.
        probe_ids = [int(i) for i in probe["input_ids"]]
        self._prefix_ids = probe_ids[: self._n_prefix]
        self._suffix_ids = probe_ids[len(probe_ids) - self._n_suffix :] if self._n_suffix else []
        if self._n_prefix + self._n_suffix >= max_tokens:
            raise NoRoomForText(self._n_prefix + self._n_suffix)
        self.chunk_overlap_tokens = chunk_overlap_tokens
        self.pad_token_id = int(self._tok.pad_token_id if self._tok.pad_token_id is not None else 0)
        # ``encode`` calls the Rust tokenizer directly when there is one: the same ids,
        # without the transformers wrapper's per-call work (about half the time of a
        # short text). None: through the wrapper.
        self.backend: Any | None = plain_backend(hf_tokenizer)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - few distinct prompts, tokenizer lives as long as the server
    def prompt_token_count(self, prompt: str) -> int:
        if not prompt:
            return 0
        return len(self._tok(self._cased(prompt), add_special_tokens=False)["input_ids"])

    def text_room(self, prompt: str) -> int:
        """Tokens of text that fit one window after the special tokens and the prompt."""
        return self.max_tokens - self._n_prefix - self._n_suffix - self.prompt_token_count(prompt)

    def passage_spans(self, text: str, max_tokens: int, overlap: int) -> list[tuple[int, int]]:
        """Character spans of ``text`` cut into passages of at most ``max_tokens`` of its
        tokens, each repeating at least ``overlap`` tokens of the one before. A cut falls
        between words where one lies within half a window of the token limit (or of the
        overlap), else between characters; a text that fits whole is one passage."""
        cased = self._cased(text)
        # A lowercasing that changes the length ("İ") would shift the offsets.
        source = cased if len(cased) == len(text) else text
        if self.backend is None:
            raise FailedPrecondition(
                "the served model's tokenizer is not a fast (Rust) tokenizer, so it gives no "
                "character offsets to split documents by"
            )
        offsets = self.backend.encode(source, add_special_tokens=False).offsets
        count = len(offsets)
        if count <= max_tokens:
            return [(0, len(text))]
        # Where a passage may begin: at a character boundary (byte-level tokens may share
        # a character) that is no combining mark (it belongs with the letter before it),
        # best at a word: a token after a space or holding one (byte-level BPE keeps a
        # word's space in its first token).
        whole = [True] * (count + 1)
        word = [True] * (count + 1)
        for i in range(1, count):
            at = offsets[i][0]
            whole[i] = at >= offsets[i - 1][1] and not unicodedata.combining(source[at])
            word[i] = whole[i] and any(c.isspace() for c in source[at - 1 : at + 1])

        def back_to(index: int, floor: int) -> int:
            """The nearest place at or before ``index`` and above ``floor`` to cut."""
            for marks, lowest in ((word, max(floor, index - max_tokens // 2)), (whole, floor)):
                cut = next((i for i in range(index, lowest, -1) if marks[i]), None)
                if cut is not None:
                    return cut
            return index

        def end_of(last: int) -> int:
            """Where a passage whose last token is ``last`` ends: past the combining marks
            that follow it (a tokenizer that strips accents leaves them out of its tokens'
            offsets), up to the next token."""
            at: int = offsets[last][1]
            limit = offsets[last + 1][0] if last + 1 < count else len(source)
            while at < limit and unicodedata.combining(source[at]):
                at += 1
            return at

        def fitting(start: int, end: int) -> int:
            """``end``, or before it where the passage's text, tokenised on its own (as it is
            embedded), has more than ``max_tokens`` tokens: a cut inside a word can make its
            remains more word pieces than they were in the whole text."""
            while end > start + 1:
                piece = source[offsets[start][0] : end_of(end - 1)]
                excess = len(backend.encode(piece, add_special_tokens=False).ids) - max_tokens
                if excess <= 0:
                    break
                end = back_to(max(start + 1, end - excess), start)
            return end

        backend = self.backend
        spans: list[tuple[int, int]] = []
        start = 0
        while True:
            end = fitting(start, back_to(min(count, start + max_tokens), start))
            spans.append((offsets[start][0], end_of(end - 1)))
            if end == count:
                return spans
            start = back_to(max(start + 1, end - overlap), start)

    def _cased(self, string: str) -> str:
        """``string`` as the model's tokenizer is to see it."""
        return lowercased(string) if self._lowercase else string

    def encode(
        self,
        texts: Sequence[str],
        prompt: str,
        overflow: Overflow,
        field: str | InputNames = "inputs",
    ) -> list[TokenizedText]:
        strings = [self._cased(prompt + text) for text in texts]
        head_len = self._n_prefix + self.prompt_token_count(prompt)
        pool_start = self._pool_start(prompt, head_len)
        names = InputNames.of(field)
        out = []
        # A slice at a time, each cut to its windows before the next is read: the
        # tokenizer's encodings take about 400 bytes a token, and a request of 64
        # million-character inputs read whole would have held some 25 GB.
        for start, end in _slices(strings, ENCODE_SLICE_CHARS):
            for index, ids in enumerate(self._encoded(strings[start:end]), start):
                out.append(
                    self._apply_overflow(
                        list(ids), head_len, pool_start, overflow, names.item(index)
                    )
                )
        return out

    def _encoded(self, strings: Sequence[str]) -> list[list[int]]:
        if self.backend is not None:
            return [e.ids for e in self.backend.encode_batch(strings, add_special_tokens=True)]
        ids: list[list[int]] = self._tok(list(strings), add_special_tokens=True)["input_ids"]
        return ids

    def encode_ids(
        self,
        id_lists: Sequence[Sequence[int]],
        prompt: str,
        overflow: Overflow,
        field: str | InputNames = "input",
    ) -> list[TokenizedText]:
        """Inputs given as token ids: the model's special tokens and the prompt go around them.
        Ids that already begin and end with them, and hold the prompt after the first ones
        (as a tokenizer gives by default, and as /tokenize answers), are taken without
        them, so that they are not added twice."""
        vocabulary = len(self._tok)
        prompt_ids = (
            list(self._tok(self._cased(prompt), add_special_tokens=False)["input_ids"])
            if prompt
            else []
        )
        head_len = self._n_prefix + len(prompt_ids)
        pool_start = self._pool_start(prompt, head_len)
        names = InputNames.of(field)
        out = []
        for index, ids in enumerate(id_lists):
            self._check_ids(ids, vocabulary, names.item(index))
            text_ids = self._text_of_framed(ids, prompt_ids)
            full = [*self._prefix_ids, *prompt_ids, *text_ids, *self._suffix_ids]
            out.append(
                self._apply_overflow(full, head_len, pool_start, overflow, names.item(index))
            )
        return out

    def _text_of_framed(self, ids: Sequence[int], prompt_ids: Sequence[int]) -> Sequence[int]:
        """``ids`` without the special tokens around them, and without the prompt after the
        leading ones, where they hold them (as the tokenizer and /tokenize give a text's)."""
        prefix, suffix = self._prefix_ids, self._suffix_ids
        framed = len(ids) > len(prefix) + len(suffix) and (prefix or suffix)
        if not (
            framed
            and list(ids[: len(prefix)]) == prefix
            and list(ids[len(ids) - len(suffix) :]) == suffix
        ):
            return ids
        inner = ids[len(prefix) : len(ids) - len(suffix)]
        prompted = prompt_ids and len(inner) > len(prompt_ids)
        if prompted and list(inner[: len(prompt_ids)]) == list(prompt_ids):
            return inner[len(prompt_ids) :]
        return inner

    def _pool_start(self, prompt: str, head_len: int) -> int:
        """The first token pooled. A model that pools without its prompt leaves out the
        tokens before the text, the leading special ones included, as sentence-transformers
        does; without a prompt it pools them all (sentence-transformers sets no prompt
        length then, so the leading special tokens count)."""
        return head_len if prompt and not self._include_prompt else 0

    def decode(
        self, id_lists: Sequence[Sequence[int]], skip_special: bool, field: str | InputNames
    ) -> list[str]:
        """The text of each list of token ids; ``skip_special``: without the added tokens."""
        vocabulary = len(self._tok)
        names = InputNames.of(field)
        for index, ids in enumerate(id_lists):
            self._check_ids(ids, vocabulary, names.item(index))
        return [str(self._tok.decode(ids, skip_special_tokens=skip_special)) for ids in id_lists]

    @staticmethod
    def _check_ids(ids: Sequence[int], vocabulary: int, where: str) -> None:
        """Refuse an id outside the vocabulary, by its place: ``where[position]``."""
        for position, token in enumerate(ids):
            if not 0 <= token < vocabulary:
                raise InvalidArgument(
                    f"{where}[{position}] is token id {token}; the model's vocabulary has ids "
                    f"0 to {vocabulary - 1}"
                )

    def _apply_overflow(
        self, ids: list[int], head_len: int, pool_start: int, overflow: Overflow, where: str
    ) -> TokenizedText:
        full = len(ids)
        head_len = self._head_within(head_len, full)
        pool_start = min(pool_start, head_len)
        if full <= self.max_tokens:
            span = (head_len, full - self._n_suffix)
            return TokenizedText((tuple(ids),), pool_start, False, full, head_len, span)
        if overflow is Overflow.ERROR:
            raise InvalidArgument(
                f"{where} has {full} tokens, more than the model's maximum of {self.max_tokens}; "
                "shorten it, or let it be truncated or chunked "
                "(the TRUNCATE or CHUNK overflow policy)"
            )
        head = ids[:head_len]
        tail = ids[full - self._n_suffix :] if self._n_suffix else []
        body = ids[head_len : full - self._n_suffix]
        room = self.max_tokens - len(head) - len(tail)
        if room <= 0:
            raise InvalidArgument(
                f"{where}: the prompt alone fills the model's {self.max_tokens} tokens"
            )
        if overflow is Overflow.TRUNCATE_LEFT:
            starts: Sequence[int] = [len(body) - room]
        elif overflow is Overflow.TRUNCATE_RIGHT:
            starts = [0]
        else:
            self._check_chunk_room(room, where)
            step = max(1, room - min(self.chunk_overlap_tokens, room // 2))
            starts = range(0, max(1, len(body) - room + step), step)
        windows = tuple(tuple(head + body[start : start + room] + tail) for start in starts)
        span = (head_len + starts[0], head_len + min(len(body), starts[0] + room))
        truncated = overflow is not Overflow.CHUNK
        return TokenizedText(windows, pool_start, truncated, full, head_len, span)

    def _check_chunk_room(self, room: int, where: str) -> None:
        """A window moves on by at least half its text's room: a prompt that left a token
        or two would read a long text as one whole window per token."""
        least = max(1, self.max_tokens // 4)
        if room < least:
            raise InvalidArgument(
                f"{where}: the prompt leaves {room} of the model's {self.max_tokens} tokens "
                f"for the text; under CHUNK each window holds the prompt and at least a "
                f"quarter of them ({least}) of the text: shorten the prompt, or let the text "
                "be truncated"
            )

    def _head_within(self, head_len: int, full: int) -> int:
        """The head's length, at most all but the trailing specials. The prompt's tokens
        are counted on the prompt alone; with the text right after it, a word across the
        seam can take fewer ([UNK] for a whole word with one unknown character)."""
        return min(head_len, full - self._n_suffix)

    def details(self, text: str, prompt: str) -> TokenDetail:
        cased = self._cased(prompt + text)
        encoded = self._tok(cased, add_special_tokens=True, return_offsets_mapping=True)
        ids = [int(i) for i in encoded["input_ids"]]
        shift = len(prompt)
        head_len = self._head_within(self._n_prefix + self.prompt_token_count(prompt), len(ids))
        origin = _origins(prompt + text, cased)
        offsets: list[tuple[int, int]] = []
        special: list[bool] = []
        for position, (start, end) in enumerate(encoded["offset_mapping"]):
            added = position < self._n_prefix or position >= len(ids) - self._n_suffix
            outside = added or position < head_len  # a special or a prompt token
            if origin is not None:  # offsets into the lowercased string, mapped back
                start, end = origin[start], origin[end - 1] + 1 if end > start else origin[end]
            offsets.append((0, 0) if outside else (max(0, start - shift), max(0, end - shift)))
            special.append(added)
        tokens = [str(t) for t in self._tok.convert_ids_to_tokens(ids)]
        return TokenDetail(ids, tokens, offsets, special)


def lowercased(string: str) -> str:
    """``string`` lowercased one character at a time, as the tokenizers' Lowercase
    normaliser does for sentence-transformers' do_lower_case: Python's ``str.lower`` turns a
    word's final capital sigma into the final form where the model's tokenizer sees the other."""
    return str(_LOWERCASE.normalize_str(string))


def _origins(original: str, cased: str) -> list[int] | None:
    """For each character of ``cased`` (``original`` lowercased), and one past its end,
    the index in ``original`` it came from; None when lowercasing kept every length ("İ"
    becomes two characters, which would shift every offset after it)."""
    if len(cased) == len(original):
        return None
    origin = [index for index, char in enumerate(original) for _ in lowercased(char)]
    origin.append(len(original))
    return origin if len(origin) == len(cased) + 1 else None


def lowercase_in_normaliser(hf_tokenizer: Any) -> bool:
    """Put Lowercase first in a fast tokenizer's normaliser, as sentence-transformers does
    for do_lower_case (unless one is there already); False for a tokenizer without one."""
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    normaliser = backend.normalizer
    steps = [normaliser]
    if isinstance(normaliser, NormalizerSequence):  # it iterates; its stubs do not say so
        steps = list(cast("Iterable[Any]", normaliser))
    if not any(isinstance(step, Lowercase) for step in steps):
        backend.normalizer = NormalizerSequence([Lowercase(), *filter(None, steps)])
    return True


def plain_backend(hf_tokenizer: Any) -> Any | None:
    """A fast tokenizer's Rust tokenizer, copied with truncation and padding off (as the
    wrapper sets them for a plain call; the copy leaves the wrapper's own untouched)."""
    backend = getattr(hf_tokenizer, "_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch"):
        return None
    plain = type(backend).from_str(backend.to_str())
    plain.no_truncation()
    plain.no_padding()
    return plain
