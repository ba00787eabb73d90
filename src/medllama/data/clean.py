"""Normalise a document's text: NFKC, no control characters, single spaces, paragraphs kept."""

from __future__ import annotations

import re
import unicodedata

# Cc and Cf except the whitespace we turn into spaces/newlines; Cf includes zero-width and bidi marks
_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFKC-normalise, drop control/format characters, collapse runs of spaces, keep paragraph breaks.

    Newlines survive (at most one blank line in a row): clinical notes and abstracts carry structure
    in their line breaks, and the tokenizer learns them as tokens.
    """
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
