"""The prepare stage: sources → clean → decontaminate → dedup → tokenizer → mix → pack, plus instruction rows.

Written under `output_dir` (a local or PVC path; an s3:// URI is staged locally, then uploaded):
  tokenizer/         HF fast tokenizer (trained byte-level BPE, or the recipe's own with a pad token)
  cpt/               packed rows for continued pre-training (no labels) + document-boundary index
  sft/               instruction examples packed into rows (labels: -100 on prompt and padding) + boundary index
  stats.json         counts, drops by reason, tokens per domain, target vs achieved ratio, contamination,
                     identifiers found by the PHI scan of clinical sources (`phi`: per type, rate per 1k tokens)
  contamination.jsonl  documents that shared an n-gram with an evaluation set (dropped or flagged)
  length_hist.png    document and example lengths
CPT rows: the mixed documents, in a seeded random order, are concatenated with EOS after each one
(and BOS before each one when the tokenizer adds BOS itself, as LLaMA's does) and cut into rows of
exactly seq_len; the final partial row is dropped (counted as tokens_dropped_tail), because padding
it would train the model on padding.
Two halves: the read side (`shard.read_shard`: read, clean, decontaminate, hash, tokenize) spools
every document to disk once, in one or many shards; the merge replays the shards in global file
order (dedup, tokenizer training, mixing, packing). `prepare` runs both here (`workers` read shards
in parallel processes); `prepare_shard` + `merge_shards` are the same halves as separate tasks (KFP
ParallelFor). Any number of shards gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from medllama import storage
from medllama.data.decontam import (
    DEFAULT_NGRAM,
    from_eval_tasks,
    merge_reports,
)
from medllama.data.clean import clean_text
from medllama.data.instructions import RowPacker, build_example, iter_examples, render_prompt
from medllama.data.mix import MixPlan, plan_mix
from medllama.data.packed import Manifest, PackedWriter, token_dtype
from medllama.data.phi import PhiCounts, check_rate
from medllama.data.replay import dedup, gather_tokens, kept_sources, kept_texts
from medllama.data.shard import BATCH, ShardOptions, load_shard, read_shard
from medllama.data.sources import DataError, ResolvedSource, resolve
from medllama.data.stats import DomainStats, plot_lengths, source_counts, summarize, write_stats
from medllama.data.tokenizer import (
    bos_prefix,
    check_tokenizer,
    encode_ids,
    encoding_tokenizer,
    load_tokenizer,
    train_bpe,
)
from medllama.recipe import Recipe
from medllama.storage import expand, is_s3, publish

log = logging.getLogger(__name__)
PACK_CHUNK = 1 << 22  # tokens gathered before cutting rows


@dataclass
class PrepareResult:
    output_dir: Path  # local: the folder itself; for an s3:// output, the local staging copy
    tokenizer_dir: Path
    cpt_dir: Path
    sft_dir: Path
    stats: dict
    uri: str = ""  # where the outputs live for the next stage: output_dir as given (local path or s3://)


@dataclass
class ShardResult:
    output_dir: Path  # local copy
    info: dict  # shard.json
    uri: str = ""


def prepare(recipe: Recipe, output_dir: str | Path, *, near_dup_threshold: float | None = None,
            decontaminate: str | None = None, ngram: int | None = None, workers: int = 1,
            progress: bool | None = None) -> PrepareResult:
    """Build the tokenizer, CPT rows and SFT rows of `recipe` under `output_dir`.

    `near_dup_threshold` (e.g. 0.8; default: the recipe's data.near_dup_threshold) also drops
    near-duplicate documents (MinHash LSH, needs datasketch). `decontaminate`: "drop" (default),
    "flag" (keep, but count and list) or "off", against the recipe's evaluation tasks with `ngram`-word
    n-grams (default 13). `workers` > 1 reads that many shards in parallel processes (same result).
    `progress`: tqdm bars; None shows them only on a terminal.
    """
    options = _options(recipe, near_dup_threshold, decontaminate, ngram)
    resolved = _check_inputs(recipe)
    out, uri = _staging(output_dir)
    quiet = None if progress is None else not progress
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
        work = Path(work)
        shard_dirs = [work / f"shard-{i:05d}" for i in range(max(workers, 1))]
        tok = sft = None
        if workers <= 1:
            _read(recipe, resolved, 0, 1, shard_dirs[0], options, quiet)
        else:
            with ProcessPoolExecutor(workers, mp_context=_worker_context()) as pool:
                jobs = [pool.submit(_read, recipe, resolved, i, workers, d, options, True) for i, d in enumerate(shard_dirs)]
                if recipe.model.tokenizer:  # load it (imports included) while the workers read
                    tok = _fresh_tokenizer(recipe.model.tokenizer, out / "tokenizer")
                    # the SFT rows need only the tokenizer: built now, they are off the merge's serial tail
                    shutil.rmtree(out / "sft", ignore_errors=True)
                    sft = _pack_sft(tok, recipe, out / "sft", token_dtype(len(tok)), quiet, options)
                _preload(options.near_dup_threshold is not None)
                for job in jobs:
                    job.result()
        log.info("read %d shard(s) in %.1fs", len(shard_dirs), time.perf_counter() - t0)
        stats = _merge(recipe, resolved, shard_dirs, out, options, work, quiet, tok, sft)
    log.info("prepare took %.1fs", time.perf_counter() - t0)
    return _published(out, uri, stats)


def prepare_shard(recipe: Recipe, shard_index: int, num_shards: int, output: str | Path, *,
                  near_dup_threshold: float | None = None, decontaminate: str | None = None,
                  ngram: int | None = None, progress: bool | None = None) -> ShardResult:
    """The read side of `prepare` for shard `shard_index` of `num_shards` (every num_shards-th source
    file), written under `output` (local path or s3://) for `merge_shards`."""
    options = _options(recipe, near_dup_threshold, decontaminate, ngram)
    resolved = _check_inputs(recipe)
    out, uri = _staging(output)
    shutil.rmtree(out, ignore_errors=True)
    quiet = None if progress is None else not progress
    info = _read(recipe, resolved, shard_index, num_shards, out, options, quiet)
    if is_s3(uri):
        publish(out, uri)
    return ShardResult(out, info, uri)


def merge_shards(recipe: Recipe, shard_outputs: list[str | Path], output: str | Path, *,
                 near_dup_threshold: float | None = None, decontaminate: str | None = None,
                 ngram: int | None = None, progress: bool | None = None) -> PrepareResult:
    """The order-dependent side of `prepare` over the outputs of every `prepare_shard`: the same
    tokenizer, CPT and SFT bytes and stats as `prepare` of the whole recipe."""
    options = _options(recipe, near_dup_threshold, decontaminate, ngram)
    resolved = _check_inputs(recipe)
    out, uri = _staging(output)
    quiet = None if progress is None else not progress
    shard_dirs = [storage.fetch(str(s)) for s in shard_outputs]
    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
        stats = _merge(recipe, resolved, shard_dirs, out, options, Path(work), quiet)
    return _published(out, uri, stats)


def _options(recipe: Recipe, near: float | None, decontaminate: str | None, ngram: int | None) -> ShardOptions:
    spec = recipe.data
    mode = decontaminate or getattr(spec, "decontaminate", None) or "drop"
    if mode not in ("drop", "flag", "off"):
        raise ValueError(f"decontaminate {mode!r}: use drop, flag or off")
    return ShardOptions(near if near is not None else getattr(spec, "near_dup_threshold", None), mode,
                        ngram or getattr(spec, "decontaminate_ngram", None) or DEFAULT_NGRAM)


def _check_inputs(recipe: Recipe) -> list[ResolvedSource]:
    resolved = resolve(recipe.data.sources)  # every source checked before any work
    for uri in recipe.data.instructions:
        expand(uri)
    if recipe.model.tokenizer:
        check_tokenizer(recipe.model.tokenizer)
    return resolved


def _staging(output_dir: str | Path) -> tuple[Path, str]:
    uri = str(output_dir)
    # an s3:// output is built in a local staging folder, then uploaded whole
    out = storage.CACHE_DIR / "prepare" / hashlib.sha256(uri.encode()).hexdigest()[:16] if is_s3(uri) else Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out, uri


def _published(out: Path, uri: str, stats: dict) -> PrepareResult:
    if is_s3(uri):
        publish(out, uri)
    log.info("prepared %d CPT rows and %d SFT rows in %s", stats["cpt"]["rows"], stats["sft"]["rows"], uri)
    return PrepareResult(out, out / "tokenizer", out / "cpt", out / "sft", stats, uri)


def _read(recipe: Recipe, resolved, shard_index: int, num_shards: int, dest: Path, options: ShardOptions, quiet) -> dict:
    decon = from_eval_tasks(recipe.eval.tasks, options.ngram) if options.decontaminate != "off" else None
    tok = dtype = None
    if recipe.model.tokenizer:  # a given tokenizer: encode here, in parallel with the other shards
        tok = encoding_tokenizer(recipe.model.tokenizer)
        dtype = token_dtype(len(tok))
    return read_shard(recipe, resolved, shard_index, num_shards, dest, options, decon, tok, dtype, quiet)


def _worker_context():
    """fork on Linux while this process runs one Python thread: the workers start with its imports
    instead of importing again (~0.4 s of CPU each). Native pools survive it (OpenBLAS and the Rust
    tokenizer re-initialise in the child); a Python thread could hold a lock the child then waits on
    forever, so with any other thread running (or elsewhere) the workers spawn."""
    fork = sys.platform == "linux" and threading.active_count() == 1 and "fork" in get_all_start_methods()
    return get_context("fork" if fork else "spawn")


def _preload(near: bool) -> None:
    """Import matplotlib and, for near dedup, datasketch (~0.5 s of CPU each) while the shard workers
    read, not on the merge's serial tail."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    if near:
        try:
            import datasketch  # noqa: F401
        except ImportError:
            pass  # the merge's dedup says how to install it


def _fresh_tokenizer(uri: str, dest: Path):
    shutil.rmtree(dest, ignore_errors=True)
    return load_tokenizer(uri, dest)


def _merge(recipe: Recipe, resolved, shard_dirs: list[Path], out: Path, options: ShardOptions, work: Path, quiet,
           tok=None, sft=None) -> dict:
    """`tok`: the recipe's tokenizer, already loaded into out/tokenizer (else loaded or trained here);
    `sft`: `_pack_sft`'s result with that tokenizer, already written into out/sft (else packed here)."""
    spec = recipe.data
    infos = _load_shards(recipe, shard_dirs, options)
    dirs = {name: out / name for name in ("tokenizer", "cpt", "sft")}
    for name, d in dirs.items():
        if not (name == "tokenizer" and tok is not None) and not (name == "sft" and sft is not None):
            shutil.rmtree(d, ignore_errors=True)  # stale shards of an earlier run must not survive
    domains = {d: DomainStats() for d in sorted({rs.source.domain for rs in resolved})}
    for info in infos:
        for d, st in info["domains"].items():
            domains[d].docs_read += st["docs_read"]
            domains[d].drops.update(st["drops"])
    runs = sorted((g, k, d, n) for k, info in enumerate(infos) for g, d, n in info["files"])
    t0 = time.perf_counter()
    kept = dedup(runs, shard_dirs, infos, options, domains)
    log.info("merge: dedup %.1fs", time.perf_counter() - t0)
    if sum(s.docs_kept for s in domains.values()) == 0:
        raise DataError("no document survived reading and cleaning; see the drop counts: "
                        + json.dumps({d: dict(s.drops) for d, s in domains.items()}))
    tok = tok or _tokenizer(recipe, runs, shard_dirs, kept, list(domains), dirs["tokenizer"])
    dtype = token_dtype(len(tok))
    for sd, info in zip(shard_dirs, infos):
        if info["tokenized"] and (info["bos"], info["vocab_size"]) != (bos_prefix(tok), len(tok)):
            raise DataError(f"shard {sd} encoded with BOS {info['bos']} and {info['vocab_size']} tokens, the merge's "
                            f"tokenizer has {bos_prefix(tok)} and {len(tok)}; the tokenizer changed between them")
    lengths, token_files = {}, {}
    for d in domains:
        token_files[d] = work / f"{d}.tok"
        if infos[0]["tokenized"]:
            lengths[d] = gather_tokens(runs, shard_dirs, kept, d, token_files[d], dtype)
        else:
            lengths[d] = _tokenize(tok, kept_texts(runs, shard_dirs, kept, d), token_files[d], dtype, d, quiet)
        domains[d].tokens_available = int(lengths[d].sum())
    log.info("merge: tokenizer and tokens %.1fs", time.perf_counter() - t0)
    phi = _phi_check(recipe, infos, domains)  # refuses here, before any training row is written
    file_source = [s for s, rs in enumerate(resolved) for _ in rs.files]  # global file number → source
    origin = {d: kept_sources(runs, kept, d, file_source) for d in domains}
    plan = plan_mix(lengths, spec.ratio, spec.token_budget, spec.seed, origin, [rs.source.weight for rs in resolved])
    for d, st in domains.items():
        st.docs_selected, st.tokens_selected = len(plan.selected[d]), plan.selected_tokens[d]
    cpt_stats = _pack_cpt(tok, plan, lengths, token_files, dtype, spec.seq_len, spec.seed, dirs["cpt"], quiet)
    log.info("merge: mix and CPT rows %.1fs", time.perf_counter() - t0)
    sft_stats, sft_lengths = sft if sft is not None else _pack_sft(tok, recipe, dirs["sft"], dtype, quiet, options)
    log.info("merge: SFT rows %.1fs", time.perf_counter() - t0)
    stats = summarize(recipe, tok, resolved, domains, plan, cpt_stats, sft_stats,
                      source_counts(resolved, origin, lengths, plan))
    stats["phi"] = phi
    stats["decontamination"] = {"mode": options.decontaminate, "ngram_words": options.ngram,
                                "sets": merge_reports([i["decontamination"] for i in infos])}
    with open(out / "contamination.jsonl", "w", encoding="utf-8") as f:
        for sd in shard_dirs:
            f.write((sd / "flagged.jsonl").read_text(encoding="utf-8"))
    write_stats(stats, out)
    plot_lengths(lengths, sft_lengths, spec.seq_len, out / "length_hist.png")
    log.info("merge: stats and plot %.1fs", time.perf_counter() - t0)
    return stats


def _phi_check(recipe: Recipe, infos: list[dict], domains: dict[str, DomainStats]) -> dict:
    """The PHI scan over every shard: counts per type and the rate per 1k tokens of the scanned domains."""
    spec = recipe.data.phi
    counts = PhiCounts()
    for info in infos:
        counts.add(PhiCounts.from_dict(info["phi"]))
    tokens = sum(st.tokens_available for d, st in domains.items() if d in spec.domains)
    return {"domains": spec.domains, **check_rate(counts, tokens, spec.max_per_1k_tokens, spec.allow)}


def _load_shards(recipe: Recipe, shard_dirs: list[Path], options: ShardOptions) -> list[dict]:
    infos = [load_shard(d) for d in shard_dirs]
    n = len(infos)
    if sorted(i["shard_index"] for i in infos) != list(range(n)) or any(i["num_shards"] != n for i in infos):
        got = [(i["shard_index"], i["num_shards"]) for i in infos]
        raise DataError(f"merge needs every shard of one run, once each; got (index, num_shards) {got}")
    want = options.fingerprint(recipe)
    stale = [str(d) for d, i in zip(shard_dirs, infos) if i["fingerprint"] != want]
    if stale:
        raise DataError(f"shards {stale} were read with another recipe or other options; run prepare_shard again")
    order = sorted(range(n), key=lambda k: infos[k]["shard_index"])
    shard_dirs[:] = [shard_dirs[k] for k in order]
    return [infos[k] for k in order]


def _tokenizer(recipe: Recipe, runs, shard_dirs, kept, domains: list[str], dest: Path):
    if recipe.model.tokenizer:
        return load_tokenizer(recipe.model.tokenizer, dest)
    # the instructions too: the same tokenizer encodes their prompts, which the corpus may never phrase
    texts = chain((t for d in domains for t in kept_texts(runs, shard_dirs, kept, d)), _instruction_texts(recipe.data))
    return train_bpe(texts, recipe.model.vocab_size, dest)


def _instruction_texts(spec) -> Iterator[str]:
    for ex in iter_examples(spec.instructions, Counter()):  # drops are counted when the rows are built
        yield render_prompt(ex, spec) + ex.output


def _tokenize(tok, texts: Iterator[str], dest: Path, dtype, domain: str, quiet) -> np.ndarray:
    """Token ids of every text concatenated in `dest`; returns the per-document sizes (tokens + 1 for
    the EOS each document will be followed by)."""
    sizes: list[np.ndarray] = []
    batch: list[str] = []
    bos = bos_prefix(tok)
    with open(dest, "wb") as f:
        def flush() -> None:
            flat, n = encode_ids(tok, batch, bos, dtype)
            flat.tofile(f)
            sizes.append(n + 1)
            batch.clear()

        for text in tqdm(texts, desc=f"tokenize {domain}", unit="doc", disable=quiet):
            batch.append(text)
            if len(batch) == BATCH:
                flush()
        flush()
    return np.concatenate(sizes)


def _pack_cpt(tok, plan: MixPlan, lengths: dict[str, np.ndarray], token_files: dict[str, Path], dtype,
              seq_len: int, seed: int, dest: Path, quiet) -> dict:
    eos = np.asarray([tok.eos_token_id], dtype=dtype)
    # memory-mapped: the page cache, not the heap, holds the corpus
    tokens = {d: np.memmap(p, dtype=dtype, mode="r") if p.stat().st_size else np.zeros(0, dtype) for d, p in token_files.items()}
    starts = {d: np.concatenate([[0], np.cumsum(lengths[d] - 1)]) for d in lengths}
    manifest = Manifest("cpt", seq_len, dtype.name, len(tok), int(eos[0]), tok.pad_token_id)
    writer = PackedWriter(dest, manifest)
    carry, carry_at = np.zeros(0, dtype), np.zeros(0, np.int64)  # the partial row and its document starts
    pieces, doc_at, n, total, docs = [carry], [], 0, 0, 0
    for d, i in tqdm(plan.iter_order(seed), total=plan.documents, desc="pack cpt", unit="doc", disable=quiet):
        doc = tokens[d][starts[d][i]:starts[d][i + 1]]
        doc_at.append(n)
        pieces += [doc, eos]
        n += len(doc) + 1
        docs += 1
        if n >= PACK_CHUNK:
            total += n
            carry, carry_at = _cut_rows(writer, np.concatenate([carry, *pieces[1:]]), np.concatenate([carry_at, np.asarray(doc_at) + len(carry)]), seq_len)
            pieces, doc_at, n = [carry], [], 0
    total += n
    carry, _ = _cut_rows(writer, np.concatenate([carry, *pieces[1:]]), np.concatenate([carry_at, np.asarray(doc_at, np.int64) + len(carry)]), seq_len)
    fill = len(carry)
    manifest.stats = {"docs": docs, "tokens": total - fill, "tokens_dropped_tail": fill}
    writer.close()
    if manifest.rows == 0:
        raise DataError(f"the mixed corpus has {total} tokens, fewer than one row of seq_len {seq_len}; "
                        "add data, lower data.seq_len or set data.token_budget")
    return {"rows": manifest.rows, **manifest.stats}


def _cut_rows(writer: PackedWriter, stream: np.ndarray, doc_at: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Write the whole rows of `stream` with their in-row document starts; return the rest and its starts."""
    rows = len(stream) // seq_len
    bounds = np.searchsorted(doc_at, np.arange(rows + 1) * seq_len, side="right")  # starts after each row's 0
    ends = np.searchsorted(doc_at, np.arange(1, rows + 1) * seq_len, side="left")
    for r in range(rows):
        writer.add(stream[r * seq_len:(r + 1) * seq_len], doc_starts=doc_at[bounds[r]:ends[r]] - r * seq_len)
    rest = doc_at[doc_at >= rows * seq_len] - rows * seq_len
    return stream[rows * seq_len:].copy(), rest


def _pack_sft(tok, recipe: Recipe, dest: Path, dtype, quiet, options: ShardOptions) -> tuple[dict, list[int]]:
    """Instruction examples packed into rows (RowPacker), the padding share reported beside the share one
    example per row would have had; examples sharing an n-gram with an evaluation set are dropped (or
    flagged) as corpus documents are, counted per set in the stats' `decontamination`."""
    spec = recipe.data
    manifest = Manifest("sft", spec.seq_len, dtype.name, len(tok), tok.eos_token_id, tok.pad_token_id)
    writer = PackedWriter(dest, manifest)
    packer = RowPacker(writer)
    drops, counts, lengths = Counter(), Counter(), []
    decon = from_eval_tasks(recipe.eval.tasks, options.ngram) if options.decontaminate != "off" else None
    examples = matched = tokens = 0
    for ex in tqdm(iter_examples(spec.instructions, drops), desc="pack sft", unit="ex", disable=quiet):
        examples += 1
        if decon is not None and decon.matches(clean_text(f"{render_prompt(ex, spec)}\n{ex.output}")):
            matched += 1
            if options.decontaminate == "drop":
                drops["contaminated"] += 1
                continue
        row = build_example(tok, ex, spec, counts, lengths)
        if row is not None:
            packer.add(*row)
            tokens += len(row[0])
    packer.close()
    packed = packer.examples
    manifest.stats = {
        "examples_read": examples,
        "examples": packed,
        "tokens": tokens,
        "truncated": counts["truncated"],
        "drops": dict(sorted((drops + Counter(prompt_too_long=counts["prompt_too_long"])).items())),
        "padding_share": packer.pad_tokens / (tokens + packer.pad_tokens) if tokens else 0.0,
        "padding_share_one_per_row": 1 - tokens / (packed * spec.seq_len) if packed else 0.0,
    }
    if decon is not None:
        sets = merge_reports([decon.report()])
        manifest.stats["decontamination"] = {
            "mode": options.decontaminate, "examples_matched": matched,
            "share": round(matched / examples, 4) if examples else 0.0,
            "sets": {name: {"instructions_matched": st["docs_matched"], "test_examples_found": st["examples_matched"],
                            "test_share": st["share"]} for name, st in sets.items()}}
    writer.close()
    return {"rows": manifest.rows, **manifest.stats}, lengths
