"""The error of the fine-tuning command: bad input, named by its flag and line."""

from __future__ import annotations


class FinetuneError(Exception):
    """A user mistake; the message names the flag (and line) at fault and is printed as is."""
