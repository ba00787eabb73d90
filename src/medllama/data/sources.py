"""Read a recipe's sources as a stream of documents, counting every input that cannot be used.

Formats, chosen by file name (a trailing `.gz` is decompressed on the fly):
  .jsonl / .json   one JSON object per line; the document is the object's `text_field`
  .txt / .md       one document per blank-line-separated paragraph (so one-doc-per-file works too:
                   a file without blank lines is one document)
  .parquet         the `text_field` column, read in record batches (needs pyarrow)
Everything is streamed: a file is never read whole. Bad input is counted per reason, never fatal;
a source that names no readable file is fatal, and is found before any work starts (`resolve`).
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from medllama.recipe import Source
from medllama.storage import StorageError, expand, fetch

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES


class DataError(ValueError):
    """Input data that cannot be prepared at all; the message names the source and the fix."""


@dataclass(frozen=True)
class ResolvedSource:
    source: Source
    files: tuple[str, ...]  # supported files, in a stable order
    skipped: tuple[str, ...]  # files with an unsupported suffix


def file_format(name: str) -> str | None:
    """'jsonl' | 'text' | 'parquet' for a supported file name (a `.gz` suffix allowed), else None."""
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
        if lower.endswith(PARQUET_SUFFIXES):
            return None  # parquet compresses internally; a gzipped parquet is not streamable
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if lower.endswith(TEXT_SUFFIXES):
        return "text"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def resolve(sources: list[Source]) -> list[ResolvedSource]:
    """Expand every source to its files up front, so a wrong path fails before any work is done."""
    resolved, problems = [], []
    for src in sources:
        try:
            files = expand(src.path)
        except StorageError as e:
            problems.append(f"source {src.path!r} (domain {src.domain}): {e}")
            continue
        ok = tuple(f for f in files if file_format(f))
        if not ok:
            problems.append(
                f"source {src.path!r} (domain {src.domain}): none of its {len(files)} file(s) is "
                f".jsonl, .txt, .md or .parquet (optionally .gz); check the path"
            )
            continue
        resolved.append(ResolvedSource(src, ok, tuple(f for f in files if not file_format(f))))
    if problems:
        raise StorageError("cannot read the recipe's data sources:\n  " + "\n  ".join(problems))
    return resolved


def count_skipped(rs: ResolvedSource, drops: Counter) -> None:
    for name in rs.skipped:
        log.warning("source %s: skipping %s (unsupported file type)", rs.source.path, name)
        drops["unsupported_file"] += 1


def iter_file(rs: ResolvedSource, uri: str, drops: Counter) -> Iterator[str]:
    """The texts of one file of a resolved source (the unit a prepare shard reads)."""
    path = fetch(uri)
    fmt = file_format(uri)
    produced = 0
    try:
        if fmt == "parquet":
            texts = _parquet_texts(path, rs.source.text_field, drops)
        else:
            texts = _stream_texts(path, fmt, rs.source.text_field, drops)
        for text in texts:
            produced += 1
            yield text
    except (OSError, EOFError, zlib.error) as e:  # truncated/corrupt gzip, unreadable file
        log.warning("%s: stopped reading after %d documents: %s", uri, produced, e)
        drops["unreadable_file"] += 1


def _stream_texts(path: Path, fmt: str, field: str, drops: Counter) -> Iterator[str]:
    with open_binary(path) as f:
        first = f.readline()
        lines = _chain_first(first, f)
        if fmt == "jsonl":
            yield from _jsonl_texts(lines, field, drops, empty_file=not first)
        else:
            yield from _paragraphs(lines, drops, empty_file=not first)


def _chain_first(first: bytes, f: IO[bytes]) -> Iterator[bytes]:
    if first:
        yield first
        yield from f


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzip."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    # Decide by content, not name: a `.gz` that is not gzip is read plainly, a gzip without `.gz` is inflated
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _jsonl_texts(lines: Iterator[bytes], field: str, drops: Counter, empty_file: bool) -> Iterator[str]:
    if empty_file:
        drops["empty_file"] += 1
        return
    for raw in lines:
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8").lstrip("\ufeff")  # a byte-order mark some editors write first
        except UnicodeDecodeError:
            drops["undecodable"] += 1
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            drops["malformed_json"] += 1
            continue
        if not isinstance(record, dict) or field not in record:
            drops["missing_field"] += 1
            continue
        text = record[field]
        if not isinstance(text, str):
            drops["not_text"] += 1
            continue
        yield text


def _paragraphs(lines: Iterator[bytes], drops: Counter, empty_file: bool) -> Iterator[str]:
    if empty_file:
        drops["empty_file"] += 1
        return
    para: list[str] = []
    bad = False
    for raw in lines:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad = True  # the whole paragraph goes: a hole in the middle of a text is worse than no text
            continue
        if line.strip():
            para.append(line)
            continue
        if bad:
            drops["undecodable"] += 1
        elif para:
            yield "".join(para)
        para, bad = [], False
    if bad:
        drops["undecodable"] += 1
    elif para:
        yield "".join(para)


def _parquet_texts(path: Path, field: str, drops: Counter) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading .parquet needs pyarrow; pip install pyarrow") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends for a corrupt file
        log.warning("%s: not a readable parquet file: %s", path, e)
        drops["unreadable_file"] += 1
        return
    if pf.metadata.num_rows == 0:
        drops["empty_file"] += 1
        return
    if field not in pf.schema_arrow.names:
        drops["missing_field"] += pf.metadata.num_rows
        return
    for batch in pf.iter_batches(columns=[field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            if isinstance(value, str):
                yield value
            else:
                drops["not_text"] += 1
