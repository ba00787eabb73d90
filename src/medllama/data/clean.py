"""Normalise a document's text: NFKC, no control characters, single spaces, paragraphs kept."""

from __future__ import annotations

import re
import string
import unicodedata

# Cc and Cf except the whitespace we turn into spaces/newlines; Cf includes zero-width and bidi marks
_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_SPLIT = str.maketrans({c: " " for c in string.punctuation})
_ASCII_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # every ASCII character the slow path would change


def clean_text(text: str) -> str:
    """NFKC-normalise, drop control/format characters, collapse runs of spaces, keep paragraph breaks.

    Newlines survive (at most one blank line in a row): clinical notes and abstracts carry structure
    in their line breaks, and the tokenizer learns them as tokens.
    """
    if _already_clean(text):
        return text
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _already_clean(text: str) -> bool:
    """True when `clean_text` would return `text` unchanged, checked with C-speed scans: ASCII (NFKC is the
    identity), no control character (tab and CR included), single spaces, no space at a line's edge, at
    most one blank line in a row, nothing to strip at either end. Most corpus text takes this path."""
    return (text.isascii() and text[:1] not in " \n" and text[-1:] not in " \n" and "  " not in text
            and " \n" not in text and "\n " not in text and "\n\n\n" not in text and not _ASCII_CONTROL.search(text))


def split_words(cleaned: str) -> list[str]:
    """Lower-cased words of a cleaned text, split at whitespace and ASCII punctuation (C-speed
    `translate` + `split`): the unit of near-dedup shingles and decontamination n-grams."""
    return cleaned.lower().translate(_SPLIT).split()
