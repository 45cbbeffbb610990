"""Text from Stripe shown to a person: control characters escaped, so that a name cannot forge a
report line, clear the screen with an ANSI sequence or reorder a line with a bidi override.

Escapes look like Python's (``\\n``, ``\\x1b``, ``\\u202e``); everything else (accents, emoji, other
scripts) is shown as it is. Pure: no I/O.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, line and paragraph separators, bidi controls, lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _one(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape(text: str) -> str:
    """``text`` on one line, with every character that could control a terminal escaped."""
    return _UNSAFE.sub(_one, text)


_UNSAFE_BUT_NEWLINE = re.compile(_UNSAFE.pattern.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))


def escape_lines(lines: list[str]) -> str:
    """The lines escaped one by one and joined by line breaks: one scan of the joined text when no
    line holds anything to escape (a report of 200,000 operations: one search, not 200,000)."""
    text = "\n".join(lines)
    if _UNSAFE_BUT_NEWLINE.search(text) is None and text.count("\n") == len(lines) - 1:
        return text
    return "\n".join(escape(line) for line in lines)


def json_text(text: str) -> str:
    """JSON text (``ensure_ascii=False``) made encodable: a lone surrogate, which only occurs inside a
    string, becomes its ``\\uXXXX`` escape, which JSON reads back as the same character."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
