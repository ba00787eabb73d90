"""Questions per second of medllama's evaluator vs lm-evaluation-harness, same model, same data, same run.

    .venv/bin/python bench/eval_throughput.py --n 96 --batch-size 8 [--out bench/eval_throughput.json]

Builds a ~33M-parameter Llama (random init; hidden 512, 8 layers, 8 heads, intermediate 1376) and a byte-level
BPE tokenizer trained here with `tokenizers`, writes synthetic, fictional questions in the MedQA and PubMedQA
release formats, then scores them with both evaluators:

- medqa-gen, pubmedqa-gen: the mode the paper recipes use (zero-shot generation, greedy, the task's
  max_new_tokens and stop sequences), medllama `run_examples(mode="generate")` against lm-eval's
  `generate_until` (`until` = the task's stop sequences, to which lm-eval adds EOS; `max_gen_toks` the same)
  on the same prompts; the raw outputs, cut at the stops, must be identical. An untimed run counts the rows
  fed to decode steps beside the count had no question ended early (`decode_rows`).
- medqa-text (option-text log-likelihood, the figure kept from before, labelled as such): 4 options of
  several tokens each, scored by their text (medllama: `option_text`; lm-eval: `doc_to_choice` = the option
  texts). medllama runs each prompt once and reuses its KV cache for the options; lm-eval runs prompt +
  option four times.
- pubmedqa (log-likelihood): yes/no/maybe after the abstract, one token each; lm-eval groups them into one pass.

lm-eval runs its `hf` model on the saved model directory (add_bos_token=True, as medllama's prompts start with
<s>) over a task YAML whose data is a JSONL of the prompts medllama rendered from the release files (its default
instruction template, which ends in a newline) with `target_delimiter: ""`, so both score the same token
sequences (lm-eval moves the newline into the continuation: a term common to all options). Predictions must agree item by item (the
script fails otherwise). Timed: the model call (medllama `loglikelihoods` or `generate`; lm-eval `HFLM.loglikelihood` or
`HFLM.generate_until`), in wall and process-CPU seconds, and the whole evaluation after the model is loaded (medllama `run_examples` + metrics; lm-eval `simple_evaluate`
with the loaded HFLM). Offline: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set before anything is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FULL = dict(hidden=512, layers=8, heads=8, intermediate=1376, vocab=8000)
SMOKE = dict(hidden=32, layers=2, heads=4, intermediate=64, vocab=600)
_SYLLABLES = ("ba be bi bo ca ce ci co da de di do fa fe fi ga ge gi go ha he hi la le li lo ma me mi mo na ne ni "
              "no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi vo za ze zi zo tri pro hyp ost car "
              "neu gen lym phy col derm hep ren pul").split()
_COMMON = ("the a of in with and to was for patient study is on after were by had as at or treatment group "
           "increased decreased level dose blood serum therapy risk trial cells cancer mg daily showed").split()


def _words(rng: random.Random, n: int) -> list[str]:
    """Invented medical-sounding words: the text means nothing and copies nothing."""
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(out)


def _sentence(rng: random.Random, vocab: list[str], lo: int, hi: int) -> str:
    words = [rng.choice(_COMMON) if rng.random() < 0.4 else rng.choice(vocab) for _ in range(rng.randint(lo, hi))]
    return " ".join(words).capitalize() + "."


def write_release_files(root: Path, n: int, seed: int = 0, scale: float = 1.0) -> dict[str, Path]:
    """`n` fictional MedQA items (US/4_options layout) and `n` PubMedQA items (ori_pqal.json layout)."""
    rng = random.Random(seed)
    vocab = _words(rng, 6000)
    s = lambda lo, hi: _sentence(rng, vocab, max(1, int(lo * scale)), max(1, int(hi * scale)))  # noqa: E731
    medqa = root / "medqa" / "US" / "4_options" / "phrases_no_exclude_test.jsonl"
    medqa.parent.mkdir(parents=True)
    with medqa.open("w") as f:
        for i in range(n):
            options = {k: " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 8))) for k in "ABCD"}
            answer = "ABCD"[i % 4]
            question = " ".join(s(10, 22) for _ in range(rng.randint(5, 9))) + " Which is the most likely cause?"
            f.write(json.dumps({"question": question, "answer": options[answer], "options": options,
                                "meta_info": "step1", "answer_idx": answer, "metamap_phrases": []}) + "\n")
    pubmedqa = root / "pubmedqa" / "ori_pqal.json"
    pubmedqa.parent.mkdir(parents=True)
    records = {}
    for i in range(n):
        records[str(90000000 + i)] = {
            "QUESTION": s(8, 14).rstrip(".") + "?", "CONTEXTS": [" ".join(s(10, 22) for _ in range(3))
                                                              for _ in range(rng.randint(2, 3))],
            "LABELS": ["BACKGROUND", "RESULTS"], "MESHES": [], "YEAR": "2020",
            "final_decision": ("yes", "no", "maybe")[i % 3], "LONG_ANSWER": s(8, 14)}
    pubmedqa.write_text(json.dumps(records, indent=1))
    # every item is in the test split (the release's test_ground_truth.json layout: PMID -> decision)
    pubmedqa.with_name("test_ground_truth.json").write_text(json.dumps({k: r["final_decision"] for k, r in records.items()}))
    return {"medqa-text": medqa, "pubmedqa": pubmedqa}


def build_model(path: Path, corpus: list[str], size: dict, seed: int = 0) -> dict:
    """A random-init LlamaForCausalLM and a byte-level BPE tokenizer trained on `corpus`, saved to `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=size["vocab"],
                                                        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", model_max_length=1024)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=size["hidden"], intermediate_size=size["intermediate"],
                         num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
                         num_key_value_heads=size["heads"], max_position_embeddings=1024, bos_token_id=bos,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    tok.save_pretrained(path)
    model.save_pretrained(path)
    return {**size, "params": sum(p.numel() for p in model.parameters()), "vocab": len(tok)}


# case -> (task, file, mode)
CASES = {"medqa-gen": ("medqa", "medqa", "generate"), "pubmedqa-gen": ("pubmedqa", "pubmedqa", "generate"),
         "medqa-text": ("medqa-text", "medqa", "loglikelihood"), "pubmedqa": ("pubmedqa", "pubmedqa", "loglikelihood")}


def bench_tasks():
    """The cases' medllama tasks: MedQA and PubMedQA as shipped, and MedQA scored by option text."""
    from dataclasses import replace

    from medllama.evaluate import get_task

    medqa = get_task("medqa")
    return {"medqa": medqa, "medqa-text": replace(medqa, name="medqa-text", option_text=True),
            "pubmedqa": get_task("pubmedqa")}


@contextlib.contextmanager
def timed_calls(owner, name: str):
    """Add up the wall and process-CPU seconds of every call of `owner.name` made inside the block. CPU seconds
    hardly change when other work shares the cores (wall seconds do); with one torch thread they are the cost."""
    timer = {"scoring_s": 0.0, "scoring_cpu_s": 0.0}
    inner = getattr(owner, name)

    def timed(*args, **kwargs):
        t, cpu = time.perf_counter(), time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            timer["scoring_s"] += time.perf_counter() - t
            timer["scoring_cpu_s"] += time.process_time() - cpu

    setattr(owner, name, timed)
    try:
        yield timer
    finally:
        setattr(owner, name, inner)


def run_ours(lm, task, examples, batch_size: int, mode: str = "loglikelihood") -> dict:
    import medllama.evaluate.run as run_module
    from medllama.evaluate import run_examples

    call = "loglikelihoods" if mode == "loglikelihood" else "generate"
    with timed_calls(run_module, call) as timer:  # the model call run_examples makes
        t0 = time.perf_counter()
        samples, _, _ = run_examples(lm, task, examples, mode, batch_size)  # the default template
        task.metrics([s.reference for s in samples], [s.prediction for s in samples], task.labels)
        total = time.perf_counter() - t0
    # generate mode: the raw outputs must match lm-eval's; loglikelihood: the chosen labels
    answers = [s.output for s in samples] if mode == "generate" else [s.prediction for s in samples]
    return {"predictions": answers, "eval_s": total, **timer, "prompts": [s.prompt for s in samples]}


def decode_rows(lm, task, examples, batch_size: int) -> dict:
    """Rows fed to decode steps in one generate-mode run (untimed), beside the count had every question run all
    its max_new_tokens: what rows leaving early (EOS, a stop sequence) saved on this model and data."""
    from medllama.decoding import DecodeBatch
    from medllama.evaluate import run_examples

    fed, step = [0], DecodeBatch.step

    def counted(self, tokens):
        fed[0] += len(tokens)
        return step(self, tokens)

    DecodeBatch.step = counted
    try:
        _, _, decoding = run_examples(lm, task, examples, "generate", batch_size)
    finally:
        DecodeBatch.step = step
    return {"fed": fed[0], "if_none_ended_early": len(examples) * (decoding["max_new_tokens"] - 1)}


def lm_eval_gen_task(root: Path, name: str, examples, prompts: list[str], max_new_tokens: int,
                     until: tuple[str, ...]) -> str:
    """A JSONL of the rendered prompts and a generate_until task YAML over it (greedy, the task's stops)."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / f"{name}.jsonl"
    with data.open("w") as f:
        for ex, prompt in zip(examples, prompts):
            f.write(json.dumps({"prompt": prompt, "target": ex.reference}) + "\n")
    task_name = f"medllama_bench_{name.replace('-', '_')}"
    (root / f"{task_name}.yaml").write_text(
        f"task: {task_name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: prompt\ndoc_to_target: target\n"
        f"target_delimiter: \"\"\ngeneration_kwargs:\n  until: {json.dumps(list(until))}\n"
        f"  max_gen_toks: {max_new_tokens}\n"
        "  do_sample: false\nmetric_list:\n  - metric: exact_match\n")
    return task_name


def lm_eval_task(root: Path, name: str, task, examples, prompts: list[str]) -> str:
    """A JSONL of the rendered prompts and the option texts, and a task YAML over it; returns the task name."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / f"{name}.jsonl"
    with data.open("w") as f:
        for ex, prompt in zip(examples, prompts):
            labels = task.choices(ex)
            f.write(json.dumps({"prompt": prompt, "choices": [task.continuation(ex, x) for x in labels],
                                "labels": labels, "gold": labels.index(ex.reference)}) + "\n")
    task_name = f"medllama_bench_{name.replace('-', '_')}"
    # medllama puts the answer right after a prompt ending in whitespace, else after one space
    delimiter = "" if prompts[0][-1:].isspace() else " "
    (root / f"{task_name}.yaml").write_text(
        f"task: {task_name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: prompt\ndoc_to_choice: choices\n"
        f"doc_to_target: gold\ntarget_delimiter: {json.dumps(delimiter)}\nmetric_list:\n  - metric: acc\n")
    return task_name


def run_lm_eval(hflm, task_manager, task_name: str, batch_size: int, limit: int | None = None,
                mode: str = "loglikelihood") -> dict:
    import lm_eval

    call = "loglikelihood" if mode == "loglikelihood" else "generate_until"
    with timed_calls(hflm, call) as timer:
        t0 = time.perf_counter()
        out = lm_eval.simple_evaluate(model=hflm, tasks=[task_name], batch_size=batch_size, log_samples=True,
                                      task_manager=task_manager, verbosity="ERROR",
                                      random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0,
                                      limit=limit)
        total = time.perf_counter() - t0
    rows = sorted(out["samples"][task_name], key=lambda r: r["doc_id"])
    if mode == "generate":
        return {"predictions": [r["resps"][0][0] for r in rows], "eval_s": total, **timer}
    preds = []
    for r in rows:
        lls = [resp[0] for resp in r["filtered_resps"]]
        preds.append(r["doc"]["labels"][max(range(len(lls)), key=lls.__getitem__)])  # first of ties, as medllama
    return {"predictions": preds, "eval_s": total, **timer}


def summarize(runs: dict[str, list[dict]], examples, mode: str = "loglikelihood") -> dict:
    """Best-of-rounds questions/s per evaluator (scoring call and whole evaluation), speed-ups, agreement."""
    n = len(examples)
    ours, theirs = runs["medllama"][0]["predictions"], runs["lm_eval"][0]["predictions"]
    assert all(r["predictions"] == ours for r in runs["medllama"]) and all(
        r["predictions"] == theirs for r in runs["lm_eval"]), "a rerun changed its own predictions"
    out = {"questions": n, "agreement": f"{sum(a == b for a, b in zip(ours, theirs, strict=True))}/{n}"}
    if mode == "loglikelihood":
        out["accuracy"] = sum(p == e.reference for p, e in zip(ours, examples)) / n
    for who, rs in runs.items():
        best = {k: min(r[k] for r in rs) for k in ("scoring_s", "scoring_cpu_s", "eval_s")}
        out[who] = {"scoring_qps": n / best["scoring_s"], "eval_qps": n / best["eval_s"],
                    "scoring_q_per_cpu_s": n / best["scoring_cpu_s"], **best,
                    **{f"all_{k}": [round(r[k], 3) for r in rs] for k in ("scoring_s", "scoring_cpu_s", "eval_s")}}
    out["speedup_scoring"] = out["lm_eval"]["scoring_s"] / out["medllama"]["scoring_s"]
    out["speedup_scoring_cpu"] = out["lm_eval"]["scoring_cpu_s"] / out["medllama"]["scoring_cpu_s"]
    out["speedup_eval"] = out["lm_eval"]["eval_s"] / out["medllama"]["eval_s"]
    return out


def versions() -> dict[str, str]:
    import importlib.metadata as md

    names = ("torch", "transformers", "tokenizers", "datasets", "lm_eval", "accelerate", "medllama-ops")
    return {"python": platform.python_version(), **{n: md.version(n) for n in names}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=96, help="questions per case")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of each evaluator, alternating; best counts")
    ap.add_argument("--smoke", action="store_true", help="a tiny model and short texts: checks the wiring only")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {list(CASES)}")
    ap.add_argument("--work", help="directory for the model and data (default: a temporary one)")
    ap.add_argument("--out", help="write the results JSON here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from medllama.evaluate.scoring import load_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work or tmp)
        files = write_release_files(root / "data", args.n, scale=0.25 if args.smoke else 1.0)
        tasks = bench_tasks()
        examples = {name: tasks[name].load(path, None) for name, path in
                    (("medqa", files["medqa-text"]), ("medqa-text", files["medqa-text"]), ("pubmedqa", files["pubmedqa"]))}
        corpus = [t for exs in examples.values() for e in exs for t in (e.question, e.context, *e.options.values())]
        # the answers as words of their own, so that "yes", "no", "maybe" are one token each
        corpus += [tasks[n].instruction for n in tasks] + ["yes", "no", "maybe", " yes", " no", " maybe"] * 50
        corpus += _words(random.Random(0), 6000)  # the whole invented vocabulary: the tokenizer does not depend on n
        model_info = build_model(root / "model", corpus, SMOKE if args.smoke else FULL)
        lm = load_model(root / "model", device="cpu")
        hflm = HFLM(pretrained=str(root / "model"), device="cpu", dtype="float32", batch_size=args.batch_size,
                    add_bos_token=True)
        results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                   "load_avg_before": os.getloadavg(), "versions": versions(), "model": model_info,
                   "batch_size": args.batch_size, "threads": args.threads, "n": args.n, "rounds": args.rounds,
                   "command": " ".join([Path(sys.executable).name, *sys.argv]), "cases": {}}
        for name in args.cases.split(","):
            task_key, _, mode = CASES[name]
            task, exs = tasks[task_key], examples[task_key]
            run_ours(lm, task, exs[: args.batch_size], args.batch_size, mode)  # warm-up, untimed
            ours = run_ours(lm, task, exs, args.batch_size, mode)
            if mode == "generate":
                max_new = min(task.max_new_tokens, lm.max_len // 2)  # as run_examples caps it
                task_name = lm_eval_gen_task(root / "lm_eval_tasks", name, exs, ours["prompts"], max_new,
                                             task.stop)
            else:
                task_name = lm_eval_task(root / "lm_eval_tasks", name, task, exs, ours["prompts"])
            # built once, untimed: it indexes lm-eval's thousands of bundled task files
            manager = TaskManager(include_path=str(root / "lm_eval_tasks"))
            run_lm_eval(hflm, manager, task_name, args.batch_size, args.batch_size, mode)  # warm-up, datasets cache
            runs = {"medllama": [], "lm_eval": []}
            for _ in range(args.rounds):  # alternating, so that a busy spell on the machine hits both
                runs["medllama"].append(ours if not runs["medllama"] else run_ours(lm, task, exs, args.batch_size, mode))
                runs["lm_eval"].append(run_lm_eval(hflm, manager, task_name, args.batch_size, mode=mode))
            results["cases"][name] = {"mode": mode, **summarize(runs, exs, mode)}
            if mode == "generate":
                results["cases"][name]["decode_rows"] = decode_rows(lm, task, exs, args.batch_size)
            agree = results["cases"][name]["agreement"]
            if agree != f"{len(exs)}/{len(exs)}":
                raise SystemExit(f"{name}: predictions differ ({agree} agree)")
        results["load_avg_after"] = os.getloadavg()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return results


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
