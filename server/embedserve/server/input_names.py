"""How error messages name a request's texts: by default ``inputs`` and ``inputs[3]``.

Where the core gathers a request's texts from several fields (the texts among an upsert's
documents, both sides of similarity pairs, recommendation examples), each text is named
where the caller put it: ``documents[7].text is empty``, not the 7th text's index among the
texts alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class InputNames:
    whole: str  # the list as a whole: "inputs must not be empty"
    each: Callable[[int], str] | None = None  # one text by its index among the texts

    def __str__(self) -> str:
        return self.whole

    def item(self, index: int) -> str:
        return self.each(index) if self.each is not None else f"{self.whole}[{index}]"

    @classmethod
    def of(cls, names: str | InputNames) -> InputNames:
        return names if isinstance(names, InputNames) else cls(names)

    @classmethod
    def listed(cls, whole: str, names: Sequence[str]) -> InputNames:
        """Each text's name given in full, in the order of the texts."""
        return cls(whole, names.__getitem__)

    @classmethod
    def single(cls, name: str) -> InputNames:
        """One text in a field of its own (a search's ``text``)."""
        return cls(name, lambda _index: name)
