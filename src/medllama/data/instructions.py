"""Instruction-tuning examples: read Alpaca and chat records, render prompts, build masked rows.

Record shapes (JSONL, one per line, optionally .gz; or a JSON array of them):
  Alpaca  {"instruction": str, "input": str (optional), "output": str}
  chat    {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
A chat record trains on its last assistant message; the user message before it is the instruction and
any earlier turns (system included) are rendered "role: content", one per line, as the input.

An example is [BOS] + prompt + response + EOS (BOS only where the tokenizer adds one); labels are -100
on the prompt, so only the response and its EOS are trained. Too long for a row: the input is
shortened first (it is the context, the instruction and the "### Response:" cue stay whole), then the
response is cut at the end; an example whose prompt alone fills the row is dropped. All counted.
`RowPacker` packs examples into rows of seq_len (first fit), right-padded with pad_id (label -100), with
the document-boundary index CPT rows have: position_ids restart at each example, so an example never
attends to the one packed before it.

`chat_template(spec)` is the same rendering as a Jinja chat template, saved with the tokenizer at export:
a served chat request (and vLLM on a cluster) is prompted exactly as the model was tuned.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from medllama.data.packed import IGNORE_INDEX, PackedWriter
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


def chat_template(spec: DataSpec, bos: bool = False) -> str:
    """`render_prompt` as a Jinja chat template over `messages` (what `apply_chat_template` and vLLM read):
    the last user message is the instruction, earlier turns are the input as `_from_messages` renders them.
    The literal text comes from the recipe's two prompt templates themselves, so the two cannot drift.
    `bos` (a tokenizer that starts encodings with BOS, as SFT rows then do) opens it with `bos_token`:
    vLLM tokenizes a rendered chat without adding special tokens, so the template must carry it."""
    history = ("{%- set ns = namespace(lines=[]) -%}"
               "{%- for m in messages[:-1] -%}{%- set ns.lines = ns.lines + [m['role'] ~ ': ' ~ m['content'] | trim] -%}"
               "{%- endfor -%}{%- set input = ns.lines | join('\\n') -%}"
               "{%- set instruction = messages[-1]['content'] | trim -%}")
    return (f"{'{{ bos_token }}' if bos else ''}{history}{{%- if input -%}}{_jinja(spec.prompt_template)}"
            f"{{%- else -%}}{_jinja(spec.prompt_template_no_input)}{{%- endif -%}}")


def _jinja(template: str) -> str:
    """A `str.format` template as Jinja: literal text as quoted strings, {instruction}/{input} as variables."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append("{{ " + json.dumps(literal) + " }}")
        if field:
            parts.append("{{ " + field + " }}")
    return "".join(parts)


def build_example(
    tok, ex: Example, spec: DataSpec, counts: Counter, lengths: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(input_ids, labels) of one example, at most seq_len long, or None when it cannot fit at all; the
    untruncated length is appended to `lengths`."""
    S, eos = spec.seq_len, tok.eos_token_id
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
    ids = np.asarray(prompt_ids + resp_ids, dtype=np.int64)
    labels = np.concatenate([np.full(len(prompt_ids), IGNORE_INDEX, dtype=np.int64), ids[len(prompt_ids):]])
    return ids, labels


class RowPacker:
    """Packs examples into rows of the writer's seq_len: each goes into the first of the (at most
    `open_rows`) open rows it fits in, else a new row, the oldest open row being written out when there
    are too many; the rest of a row is padding. Deterministic, so any number of prepare shards gives the
    same rows."""

    def __init__(self, writer: PackedWriter, open_rows: int = 64):
        self.writer, self.open_rows = writer, open_rows
        self.seq_len, self.pad_id = writer.manifest.seq_len, writer.manifest.pad_id
        self._rows: list[list[tuple[np.ndarray, np.ndarray]]] = []
        self._free: list[int] = []
        self.examples = self.pad_tokens = 0

    def add(self, ids: np.ndarray, labels: np.ndarray) -> None:
        self.examples += 1
        n = len(ids)
        for i, free in enumerate(self._free):
            if n <= free:
                self._rows[i].append((ids, labels))
                self._free[i] -= n
                if self._free[i] == 0:
                    self._write(i)
                return
        if len(self._rows) == self.open_rows:
            self._write(0)
        self._rows.append([(ids, labels)])
        self._free.append(self.seq_len - n)
        if n == self.seq_len:
            self._write(len(self._rows) - 1)

    def _write(self, i: int) -> None:
        parts, free = self._rows.pop(i), self._free.pop(i)
        sizes = [len(ids) for ids, _ in parts]
        ids = np.concatenate([p[0] for p in parts] + [np.full(free, self.pad_id, dtype=np.int64)])
        labels = np.concatenate([p[1] for p in parts] + [np.full(free, IGNORE_INDEX, dtype=np.int64)])
        self.writer.add(ids, labels, doc_starts=np.cumsum(sizes[:-1]))
        self.pad_tokens += free

    def close(self) -> None:
        while self._rows:
            self._write(0)


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
