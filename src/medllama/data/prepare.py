"""The prepare stage: sources → clean → dedup → tokenizer → mix → pack, plus instruction rows.

Written under `output_dir` (a local or PVC path; an s3:// URI is staged locally, then uploaded):
  tokenizer/       HF fast tokenizer (trained byte-level BPE, or the recipe's own with a pad token)
  cpt/             packed rows for continued pre-training (no labels)
  sft/             packed rows for instruction tuning (labels: -100 on prompt and padding)
  stats.json       counts, drops by reason, tokens per domain, target vs achieved ratio
  length_hist.png  document and example lengths
CPT rows: the mixed documents, in a seeded random order, are concatenated with EOS after each one
(and BOS before each one when the tokenizer adds BOS itself, as LLaMA's does) and cut into rows of
exactly seq_len; the final partial row is dropped (counted as tokens_dropped_tail), because padding
it would train the model on padding.
Two passes over the data: the cleaned, deduplicated corpus is spooled to disk once (JSONL, then token
ids), so nothing is ever held in memory whole and the sources are read only once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from medllama import storage
from medllama.data.clean import clean_text
from medllama.data.dedup import ExactDedup, NearDedup
from medllama.data.instructions import build_row, iter_examples, render_prompt
from medllama.data.mix import MixPlan, plan_mix
from medllama.data.packed import Manifest, PackedWriter, token_dtype
from medllama.data.sources import DataError, iter_documents, resolve
from medllama.data.stats import DomainStats, plot_lengths, summarize, write_stats
from medllama.data.tokenizer import bos_prefix, check_tokenizer, encode_batch, load_tokenizer, train_bpe
from medllama.recipe import Recipe
from medllama.storage import expand, is_s3, publish

log = logging.getLogger(__name__)
BATCH = 512  # documents per tokenizer batch call


@dataclass
class PrepareResult:
    output_dir: Path  # local: the folder itself; for an s3:// output, the local staging copy
    tokenizer_dir: Path
    cpt_dir: Path
    sft_dir: Path
    stats: dict
    uri: str = ""  # where the outputs live for the next stage: output_dir as given (local path or s3://)


def prepare(recipe: Recipe, output_dir: str | Path, *, near_dup_threshold: float | None = None,
            progress: bool | None = None) -> PrepareResult:
    """Build the tokenizer, CPT rows and SFT rows of `recipe` under the local `output_dir`.

    `near_dup_threshold` (e.g. 0.8; default: the recipe's data.near_dup_threshold when it has one) also
    drops near-duplicate documents (MinHash LSH, needs datasketch).
    `progress`: tqdm bars; None shows them only on a terminal.
    """
    spec = recipe.data
    resolved = resolve(spec.sources)  # every source checked before any work
    for uri in spec.instructions:
        expand(uri)
    if recipe.model.tokenizer:
        check_tokenizer(recipe.model.tokenizer)
    uri = str(output_dir)
    # an s3:// output is built in a local staging folder, then uploaded whole
    out = storage.CACHE_DIR / "prepare" / hashlib.sha256(uri.encode()).hexdigest()[:16] if is_s3(uri) else Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dirs = {name: out / name for name in ("tokenizer", "cpt", "sft")}
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)  # stale shards of an earlier run must not survive
    quiet = None if progress is None else not progress
    domains = {d: DomainStats() for d in sorted({rs.source.domain for rs in resolved})}

    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
        work = Path(work)
        near = near_dup_threshold if near_dup_threshold is not None else getattr(spec, "near_dup_threshold", None)
        spools = _spool_clean(resolved, spec.min_chars, near, domains, work, quiet)
        kept = sum(s.docs_kept for s in domains.values())
        if kept == 0:
            raise DataError("no document survived reading and cleaning; see the drop counts: "
                            + json.dumps({d: dict(s.drops) for d, s in domains.items()}))
        tok = _tokenizer(recipe, [spools[d] for d in domains], dirs["tokenizer"])
        dtype = token_dtype(len(tok))
        lengths, token_files = {}, {}
        for d in domains:
            token_files[d], lengths[d] = _tokenize_spool(tok, spools[d], work / f"{d}.tok", dtype, d, quiet)
            domains[d].tokens_available = int(lengths[d].sum())
        plan = plan_mix(lengths, spec.ratio, spec.token_budget, spec.seed)
        for d, st in domains.items():
            st.docs_selected, st.tokens_selected = len(plan.selected[d]), plan.selected_tokens[d]
        cpt_stats = _pack_cpt(tok, plan, lengths, token_files, dtype, spec.seq_len, spec.seed, dirs["cpt"], quiet)

    sft_stats, sft_lengths = _pack_sft(tok, recipe, dirs["sft"], dtype, quiet)
    stats = summarize(recipe, tok, resolved, domains, plan, cpt_stats, sft_stats)
    write_stats(stats, out)
    plot_lengths(lengths, sft_lengths, spec.seq_len, out / "length_hist.png")
    if is_s3(uri):
        publish(out, uri)
    log.info("prepared %d CPT rows and %d SFT rows of %d tokens in %s", cpt_stats["rows"], sft_stats["rows"], spec.seq_len, uri)
    return PrepareResult(out, dirs["tokenizer"], dirs["cpt"], dirs["sft"], stats, uri)


def _tokenizer(recipe: Recipe, spools: list[Path], dest: Path):
    if recipe.model.tokenizer:
        return load_tokenizer(recipe.model.tokenizer, dest)
    # the instructions too: the same tokenizer encodes their prompts, which the corpus may never phrase
    texts = chain((t for spool in spools for t in _read_spool(spool)), _instruction_texts(recipe.data))
    return train_bpe(texts, recipe.model.vocab_size, dest)


def _spool_clean(resolved, min_chars: int, near_dup: float | None, domains: dict[str, DomainStats],
                 work: Path, quiet: bool | None) -> dict[str, Path]:
    """Read, clean and deduplicate every source; write the kept texts to one JSONL spool per domain."""
    exact = ExactDedup()
    near = NearDedup(threshold=near_dup) if near_dup else None
    spools = {d: work / f"{d}.jsonl" for d in domains}
    handles = {d: open(p, "w", encoding="utf-8") for d, p in spools.items()}
    try:
        for rs in resolved:
            st = domains[rs.source.domain]
            for doc in tqdm(iter_documents(rs, st.drops), desc=f"read {rs.source.path}", unit="doc", disable=quiet):
                st.docs_read += 1
                text = clean_text(doc.text)
                if len(text) < min_chars:
                    st.drops["too_short"] += 1
                elif not exact.is_new(text):
                    st.drops["duplicate"] += 1
                elif near is not None and not near.is_new(text):
                    st.drops["near_duplicate"] += 1
                else:
                    st.docs_kept += 1
                    handles[doc.domain].write(json.dumps(text, ensure_ascii=False) + "\n")
    finally:
        for h in handles.values():
            h.close()
    return spools


def _instruction_texts(spec) -> Iterator[str]:
    for ex in iter_examples(spec.instructions, Counter()):  # drops are counted when the rows are built
        yield render_prompt(ex, spec) + ex.output


def _read_spool(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _tokenize_spool(tok, spool: Path, dest: Path, dtype, domain: str, quiet) -> tuple[Path, np.ndarray]:
    """Token ids of every spooled document, concatenated in `dest`; returns it and the per-document
    sizes (tokens + 1 for the EOS each document will be followed by)."""
    sizes: list[int] = []
    batch: list[str] = []
    bos = bos_prefix(tok)
    with open(dest, "wb") as f:
        def flush() -> None:
            for ids in encode_batch(tok, batch):
                ids = bos + ids
                np.asarray(ids, dtype=dtype).tofile(f)
                sizes.append(len(ids) + 1)
            batch.clear()

        for text in tqdm(_read_spool(spool), desc=f"tokenize {domain}", unit="doc", disable=quiet):
            batch.append(text)
            if len(batch) == BATCH:
                flush()
        flush()
    return dest, np.asarray(sizes, dtype=np.int64)


def _pack_cpt(tok, plan: MixPlan, lengths: dict[str, np.ndarray], token_files: dict[str, Path], dtype,
              seq_len: int, seed: int, dest: Path, quiet) -> dict:
    eos = tok.eos_token_id
    # memory-mapped: the page cache, not the heap, holds the corpus
    tokens = {d: np.memmap(p, dtype=dtype, mode="r") if p.stat().st_size else np.zeros(0, dtype) for d, p in token_files.items()}
    starts = {d: np.concatenate([[0], np.cumsum(lengths[d] - 1)]) for d in lengths}
    manifest = Manifest("cpt", seq_len, dtype.name, len(tok), eos, tok.pad_token_id)
    writer = PackedWriter(dest, manifest)
    buf = np.empty(seq_len, dtype=dtype)
    fill = total = docs = 0
    for d, i in tqdm(plan.order(seed), desc="pack cpt", unit="doc", disable=quiet):
        doc = np.append(tokens[d][starts[d][i]:starts[d][i + 1]], np.asarray(eos, dtype=dtype))
        docs += 1
        total += len(doc)
        while len(doc):
            take = min(seq_len - fill, len(doc))
            buf[fill:fill + take] = doc[:take]
            fill, doc = fill + take, doc[take:]
            if fill == seq_len:
                writer.add(buf.copy())
                fill = 0
    manifest.stats = {"docs": docs, "tokens": total - fill, "tokens_dropped_tail": fill}
    writer.close()
    if manifest.rows == 0:
        raise DataError(f"the mixed corpus has {total} tokens, fewer than one row of seq_len {seq_len}; "
                        "add data, lower data.seq_len or set data.token_budget")
    return {"rows": manifest.rows, **manifest.stats}


def _pack_sft(tok, recipe: Recipe, dest: Path, dtype, quiet) -> tuple[dict, list[int]]:
    spec = recipe.data
    manifest = Manifest("sft", spec.seq_len, dtype.name, len(tok), tok.eos_token_id, tok.pad_token_id)
    writer = PackedWriter(dest, manifest)
    drops, counts, lengths = Counter(), Counter(), []
    examples = 0
    for ex in tqdm(iter_examples(spec.instructions, drops), desc="pack sft", unit="ex", disable=quiet):
        examples += 1
        row = build_row(tok, ex, spec, counts, lengths)
        if row is not None:
            writer.add(*row)
    manifest.stats = {
        "examples_read": examples,
        "truncated": counts["truncated"],
        "drops": dict(sorted((drops + Counter(prompt_too_long=counts["prompt_too_long"])).items())),
    }
    writer.close()
    return {"rows": manifest.rows, **manifest.stats}, lengths
