"""Pages of a ranking that fit together when hits tie.

An engine breaks ties between equal scores its own way, and that way changes with how many
hits it is asked for: pages 1 and 2 (limit 4, offsets 0 and 4) could both show one of twelve
equally scored documents and neither show another. Short texts tie often under BM25.
Here every page is cut from one order: the engine's, with each run of equal scores ordered
by id, and the run that crosses a page's end read whole, so every page sees the same run.
"""

from __future__ import annotations

import dataclasses
import itertools

from .groups import Ranked
from .keywords import fusing_as_asked
from .types import Filter, ScoredPoint, SearchParams

# How many hits are read, at most, to find where a run of equal scores at a page's end stops;
# past that the engine's own order of that run stands.
MAX_TIED_READ = 10_000


def stable_page(ranked: Ranked, filter: Filter | None, params: SearchParams) -> list[ScoredPoint]:
    """The page ``params`` asks for (offset, limit) of ``ranked``, ties ordered by id. A
    diverse ranking (MMR) is not in score order, and is taken as the engine gives it."""
    if params.diversity is not None:
        return ranked(filter, params)
    params = fusing_as_asked(params)
    end = params.offset + params.limit
    read = end + 1
    while True:
        hits = ranked(filter, dataclasses.replace(params, offset=0, limit=read))
        if len(hits) < read or hits[-1].score != hits[end - 1].score or read >= MAX_TIED_READ:
            break  # every hit tied with the page's last one has been read
        read = min(read * 2, MAX_TIED_READ)
    ordered = [
        hit
        for _, run in itertools.groupby(hits, key=lambda hit: hit.score)
        for hit in sorted(run, key=lambda hit: hit.id)
    ]
    return ordered[params.offset : end]
