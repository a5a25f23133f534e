"""Strings that are no text: JSON's escapes and Python allow a lone surrogate, which
protobuf, tokenizers and data encoders then refuse without saying where it was."""

from __future__ import annotations


def surrogate_problem(text: str) -> str | None:
    """``None`` for text; else "holds \\ud800 at character 2, half of a surrogate pair and
    not a character", to follow the name of where ``text`` came from."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        return (
            f"holds \\u{code:04x} at character {exc.start + 1}, "
            "half of a surrogate pair and not a character"
        )
    return None
