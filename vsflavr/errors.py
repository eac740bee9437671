"""Exceptions told in one line, for messages that must stay on one line (vs.Error, the command line).

This module never imports VapourSynth or torch.
"""

from __future__ import annotations

__all__ = ["first_line", "one_line"]


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"``."""
    return f"{type(exc).__name__}: {first_line(exc)}"
