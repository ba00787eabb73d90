"""Normalise a document's text: NFKC, no control characters, single spaces, paragraphs kept."""

from __future__ import annotations

import re
import string
import unicodedata

# Cc and Cf except the whitespace we turn into spaces/newlines (Cf includes zero-width and bidi marks), and
# lone surrogates (Cs): a JSON "\\ud800" escape decodes to one, which no UTF-8 consumer (hash, tokenizer) accepts
_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ud800-\udfff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# ASCII punctuation to spaces, ASCII capitals to small letters, in one bytes.translate
_WORD_BYTES = bytes.maketrans(string.punctuation.encode() + string.ascii_uppercase.encode(),
                              b" " * len(string.punctuation) + string.ascii_lowercase.encode())
_ASCII_CONTROL = bytes([*range(0x0A), *range(0x0B, 0x20), 0x7F])  # every ASCII character the slow path would change


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
            and " \n" not in text and "\n " not in text and "\n\n\n" not in text
            and len(text.encode("ascii").translate(None, _ASCII_CONTROL)) == len(text))  # no control byte


def split_words(cleaned: str) -> list[bytes]:
    """The words of a cleaned text, the unit of near-dedup shingles and decontamination n-grams: its
    UTF-8 bytes with ASCII letters lower-cased, split at whitespace and ASCII punctuation. One C-speed
    encode + translate + split, and bytes words are a third cheaper to make than str ones; other
    letters keep their case (a corpus document and an evaluation text are split alike, so they match)."""
    return cleaned.encode("utf-8", "surrogatepass").translate(_WORD_BYTES).split()
