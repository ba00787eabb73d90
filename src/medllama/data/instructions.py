"""Instruction-tuning examples: read Alpaca and chat records, render prompts, build masked rows.

Record shapes (JSONL, one per line, optionally .gz; or a JSON array of them):
  Alpaca  {"instruction": str, "input": str (optional), "output": str}
  chat    {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
A chat record trains on its last assistant message; the user message before it is the instruction and
any earlier turns (system included) are rendered "role: content", one per line, as the input.

A row is [BOS] + prompt + response + EOS (BOS only where the tokenizer adds one), right-padded with pad_id to seq_len; labels are -100 on the prompt
and the padding, so only the response and its EOS are trained. Too long: the input is shortened
first (it is the context, the instruction and the "### Response:" cue stay whole), then the response
is cut at the end; an example whose prompt alone fills the row is dropped. All counted.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from medllama.data.packed import IGNORE_INDEX
from medllama.data.sources import open_binary
from medllama.data.tokenizer import bos_prefix, encode_batch
from medllama.recipe import DataSpec
from medllama.storage import expand, fetch


@dataclass(frozen=True)
class Example:
    instruction: str
    input: str
    output: str


def parse_record(record: object) -> Example | str:
    """An Example, or the reason the record cannot be used."""
    ex = _parse(record)
    if isinstance(ex, Example):
        try:  # a JSON "\\ud800" escape decodes to a lone surrogate, which the tokenizer cannot encode
            (ex.instruction + ex.input + ex.output).encode("utf-8")
        except UnicodeEncodeError:
            return "undecodable"
    return ex


def _parse(record: object) -> Example | str:
    if not isinstance(record, dict):
        return "not_an_object"
    if "messages" in record:
        return _from_messages(record["messages"])
    if not all(isinstance(record.get(k), str) for k in ("instruction", "output")):
        return "missing_field"
    inp = record.get("input") or ""
    if not isinstance(inp, str):
        return "missing_field"
    if not record["instruction"].strip() or not record["output"].strip():
        return "empty_field"
    return Example(record["instruction"].strip(), inp.strip(), record["output"].strip())


def _from_messages(messages: object) -> Example | str:
    if not isinstance(messages, list) or len(messages) < 2:
        return "bad_messages"
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ("system", "user", "assistant"):
            return "bad_messages"
    if messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
        return "bad_messages"
    history = "\n".join(f"{m['role']}: {m['content'].strip()}" for m in messages[:-2])
    ex = Example(messages[-2]["content"].strip(), history, messages[-1]["content"].strip())
    return ex if ex.instruction and ex.output else "empty_field"


def iter_examples(uris: list[str], drops: Counter) -> Iterator[Example]:
    """Examples of every instruction file (JSONL, optionally .gz; or a JSON array such as Alpaca's
    alpaca_data.json, which is read whole); unusable records are counted in `drops`."""
    for uri in uris:
        for name in expand(uri):
            for record in _records(fetch(name), drops):
                ex = parse_record(record)
                if isinstance(ex, str):
                    drops[ex] += 1
                else:
                    yield ex


def _records(path, drops: Counter) -> Iterator[object]:
    with open_binary(path) as f:
        head = f.read(1 << 10).lstrip()
        f.seek(0)
        if head.startswith(b"["):
            try:
                yield from json.loads(f.read().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                drops["malformed_json"] += 1
            return
        for raw in f:
            if not raw.strip():
                continue
            try:
                yield json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                drops["undecodable"] += 1
            except json.JSONDecodeError:
                drops["malformed_json"] += 1


def render_prompt(ex: Example, spec: DataSpec) -> str:
    if ex.input:
        return spec.prompt_template.format(instruction=ex.instruction, input=ex.input)
    return spec.prompt_template_no_input.format(instruction=ex.instruction)


def build_row(
    tok, ex: Example, spec: DataSpec, counts: Counter, lengths: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(input_ids, labels) of seq_len for one example, or None when it cannot fit at all; the
    untruncated length is appended to `lengths`."""
    S, eos, pad = spec.seq_len, tok.eos_token_id, tok.pad_token_id
    prompt_ids, resp_ids = encode_batch(tok, [render_prompt(ex, spec), ex.output])
    prompt_ids, resp_ids = bos_prefix(tok) + prompt_ids, resp_ids + [eos]
    if lengths is not None:
        lengths.append(len(prompt_ids) + len(resp_ids))
    if len(prompt_ids) + len(resp_ids) > S:
        counts["truncated"] += 1
        if ex.input:
            prompt_ids = _shorten_input(tok, ex, spec, S - len(resp_ids))
        if len(prompt_ids) >= S:
            counts["prompt_too_long"] += 1
            return None
        resp_ids = resp_ids[: S - len(prompt_ids)]
    ids = np.full(S, pad, dtype=np.int64)
    labels = np.full(S, IGNORE_INDEX, dtype=np.int64)
    n, m = len(prompt_ids), len(resp_ids)
    ids[:n], ids[n:n + m], labels[n:n + m] = prompt_ids, resp_ids, resp_ids
    return ids, labels


def _shorten_input(tok, ex: Example, spec: DataSpec, room: int) -> list[int]:
    """Prompt ids with the input cut from its end until the prompt fits in `room` tokens (or the
    input is gone); the rendered template around it stays intact."""
    input_ids = encode_batch(tok, [ex.input])[0]
    bos = bos_prefix(tok)
    prompt = bos + encode_batch(tok, [render_prompt(ex, spec)])[0]
    for _ in range(4):  # re-tokenising after a cut can move a few tokens: converge in a few steps
        over = len(prompt) - room
        if over <= 0 or not input_ids:
            break
        input_ids = input_ids[: max(len(input_ids) - over - 1, 0)]
        short = Example(ex.instruction, tok.decode(input_ids).strip() + " …" if input_ids else "", ex.output)
        prompt = bos + encode_batch(tok, [render_prompt(short, spec)])[0]
    return prompt
