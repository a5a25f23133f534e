"""Batches without a text twice, each epoch one whole pass over the pairs.

A text twice in one batch would be its own in-batch negative, so a batch holds at most
one pair per distinct text. sentence-transformers' sampler for that counts its batches
as if every batch were full (pairs / batch size), and the trainer ends an epoch at that
count: where many queries share a document, most of the pass was never trained (one
epoch over 200 questions to 10 documents trained 60 of them).
"""

from __future__ import annotations

from sentence_transformers.base.sampler import NoDuplicatesBatchSampler


class WholePassSampler(NoDuplicatesBatchSampler):
    """NoDuplicatesBatchSampler whose length is the number of batches its pass over the
    epoch's shuffle yields, counted by making that pass once (it is seeded by the epoch,
    so the training pass is the same)."""

    _counting = False

    def __len__(self) -> int:
        if self._counting:
            return 0  # the pass being counted ends at its own end, resampling nothing
        counted: dict[int, int] = self.__dict__.setdefault("_batches_by_epoch", {})
        if self.epoch not in counted:
            self._counting = True
            try:
                counted[self.epoch] = sum(1 for _ in super().__iter__())
            finally:
                self._counting = False
        return counted[self.epoch]
