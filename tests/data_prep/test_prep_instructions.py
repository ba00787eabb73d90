"""Instruction records: shapes, malformed input counted, prompts rendered, over-long rows truncated."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import numpy as np
import pytest
from transformers import AutoTokenizer

from medllama.data.instructions import Example, build_example, iter_examples, parse_record, render_prompt
from medllama.data.packed import IGNORE_INDEX
from medllama.recipe import load_recipe

SPEC = load_recipe("tiny").data


def test_parse_record_shapes():
    assert parse_record({"instruction": " Q? ", "output": "A."}) == Example("Q?", "", "A.")
    assert parse_record({"instruction": "Q?", "input": "ctx", "output": "A."}) == Example("Q?", "ctx", "A.")
    chat = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
                         {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"},
                         {"role": "assistant", "content": "A2"}]}
    assert parse_record(chat) == Example("U2", "system: S\nuser: U1\nassistant: A1", "A2")


@pytest.mark.parametrize("record, reason", [
    ([1, 2], "not_an_object"),
    ({"instruction": "Q"}, "missing_field"),
    ({"instruction": "Q", "output": 3}, "missing_field"),
    ({"instruction": "Q", "input": 5, "output": "A"}, "missing_field"),
    ({"instruction": "  ", "output": "A"}, "empty_field"),
    ({"messages": [{"role": "user", "content": "U"}]}, "bad_messages"),
    ({"messages": [{"role": "user", "content": "U"}, {"role": "bot", "content": "A"}]}, "bad_messages"),
    ({"messages": [{"role": "assistant", "content": "A"}, {"role": "assistant", "content": "A"}]}, "bad_messages"),
    ({"messages": "hello"}, "bad_messages"),
    (json.loads('{"instruction": "Say \\ud800", "output": "A"}'), "undecodable"),  # a lone surrogate escape
    ({"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A\udc00"}]}, "undecodable"),
])
def test_malformed_records(record, reason):
    assert parse_record(record) == reason


def test_iter_examples_counts_and_reads_gzip_and_json_arrays(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"instruction": "Q1", "output": "A1"}\n{broken\n\xff\xfe\n{"output": "x"}\n\n')
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write(json.dumps({"instruction": "Q2", "output": "A2"}) + "\n")
    (tmp_path / "c.json").write_text(json.dumps([{"instruction": "Q3", "output": "A3"}, {"nope": 1}]))
    drops: Counter = Counter()
    got = list(iter_examples([str(tmp_path / "*")], drops))
    assert [e.instruction for e in got] == ["Q1", "Q2", "Q3"]
    assert drops == Counter(malformed_json=1, undecodable=1, missing_field=2)


def test_render_prompt_uses_both_templates():
    assert render_prompt(Example("Q", "", "A"), SPEC) == "### Instruction:\nQ\n\n### Response:\n"
    assert render_prompt(Example("Q", "ctx", "A"), SPEC) == "### Instruction:\nQ\n\n### Input:\nctx\n\n### Response:\n"


@pytest.fixture(scope="module")
def tok(tiny_run):
    return AutoTokenizer.from_pretrained(tiny_run.tokenizer_dir)


def test_long_input_is_shortened_and_template_kept(tok):
    ex = Example("Answer with yes, no, or maybe.", "Context: " + "the patient had a fever and cough. " * 40, "yes")
    counts = Counter()
    ids, labels = build_example(tok, ex, SPEC, counts)
    assert counts == Counter(truncated=1) and SPEC.seq_len - 8 < len(ids) <= SPEC.seq_len
    trained = labels != IGNORE_INDEX
    assert tok.decode(labels[trained]) == "yes</s>"
    prompt = tok.decode(ids[: np.argmax(trained)])
    assert prompt.startswith("### Instruction:\nAnswer with yes") and prompt.endswith(" …\n\n### Response:\n")


def test_long_response_is_cut_and_hopeless_prompt_dropped(tok):
    counts = Counter()
    ids, labels = build_example(tok, Example("Explain.", "", "a long answer " * 100), SPEC, counts)
    assert counts["truncated"] == 1 and len(ids) == SPEC.seq_len
    assert labels[-1] != IGNORE_INDEX and ids[-1] != tok.eos_token_id
    assert build_example(tok, Example("why " * 300, "", "ok"), SPEC, counts) is None
    assert counts == Counter(truncated=2, prompt_too_long=1)


def test_row_packer_first_fit_with_boundaries(tmp_path):
    from medllama.data.instructions import RowPacker
    from medllama.data.packed import Manifest, PackedDataset, PackedWriter

    writer = PackedWriter(tmp_path, Manifest("sft", 10, "uint16", 100, 2, 0))
    packer = RowPacker(writer, open_rows=2)
    # 6 opens row A, 5 row B, 3 fits A; 10 fits neither and two rows are open: A is written, 10 fills a
    # row of its own; 4 and 1 fill B
    for n in (6, 5, 3, 10, 4, 1):
        packer.add(np.arange(1, n + 1) + 10 * n, np.full(n, 7))
    packer.close()
    writer.close()
    ds = PackedDataset(tmp_path)
    assert [list(ds.doc_starts(i)) for i in range(len(ds))] == [[6], [], [5, 9]]
    assert list(ds[0]["input_ids"]) == [61, 62, 63, 64, 65, 66, 31, 32, 33, 0]
    assert list(ds[0]["labels"][-2:]) == [7, -100] and list(ds[0]["position_ids"]) == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    assert list(ds[1]["input_ids"]) == list(range(101, 111))
    assert list(ds[2]["input_ids"]) == [51, 52, 53, 54, 55, 41, 42, 43, 44, 11]
    assert packer.examples == 6 and packer.pad_tokens == 1
