"""Training throughput: tokens/s and MFU of our DeepSpeed trainer beside a plain Hugging Face AMP loop,
in the same run, on the same model, data and device.

    python bench/train_throughput.py --device cuda --micro-batch 4,8                # the H100 figures
    python bench/train_throughput.py --device cpu --tiny --steps 3 --warmup 1       # smoke, any machine

Rows, each in its own subprocess (a fresh interpreter, so one row's memory never slows the next):
  hf        a plain loop: LlamaForCausalLM, bf16 autocast on CUDA (fp32 on CPU), torch AdamW (fused on
            CUDA), grad-norm clipping 1.0; `hf+compile` also torch.compile's the model (CUDA default)
  medllama  the real entrypoint, `torchrun --nproc_per_node 1 -m medllama.train`, on a recipe that is
            tiny.yaml with the benchmark model, ZeRO-2, bf16 on CUDA (fp32 on CPU); each --variant adds
            stage overrides (e.g. `fused_optimizer=true,compile=true`), so every throughput lever the
            sweep turns is a recipe field a real run can set
Both read the same synthetic packed rows (PackedWriter; random tokens; --docs-per-row adds document
boundaries, i.e. position_ids that restart and the per-document attention mask that comes with them).
tokens/s = micro_batch x seq_len / mean step time over the steps after --warmup; MFU = tokens/s x
(6N + 12·L·d·S) / peak (medllama.train.metrics; peak = $MEDLLAMA_PEAK_FLOPS or the GPU's bf16 dense
peak; null on CPU unless set). --record appends the table to the "## Training throughput" section of
bench/RESULTS.md; without it nothing but --out is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Training throughput"
# issue 3's model: a Llama of 1.1B parameters (TinyLlama's shape), sequence length 2048
LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
            "num_key_value_heads": 4, "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
LLAMA_1B_VOCAB, LLAMA_1B_SEQ = 32000, 2048
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
TINY_VOCAB, TINY_SEQ = 512, 128
CUDA_VARIANTS = ["", "fused_optimizer=true", "fused_optimizer=true,compile=true",
                 "fused_optimizer=true,compile=true,bf16_master_weights=true"]


# --------------------------------------------------------------------------- inputs
def make_tokenizer(dest: Path, vocab: int) -> Path:
    """A word-level tokenizer of exactly `vocab` entries (the trainer sizes the embedding by it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    words = {t: i for i, t in enumerate(specials + [f"w{i}" for i in range(vocab - len(specials))])}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(dest)
    assert len(fast) == vocab
    return dest


def make_data(dest: Path, rows: int, seq_len: int, vocab: int, docs_per_row: int, seed: int = 0) -> Path:
    import numpy as np

    from medllama.data.packed import Manifest, PackedWriter, token_dtype

    rng = np.random.default_rng(seed)
    manifest = Manifest("cpt", seq_len, token_dtype(vocab).name, vocab, eos_id=2, pad_id=0)
    writer = PackedWriter(dest, manifest)
    for _ in range(rows):
        row = rng.integers(4, vocab, size=seq_len)
        starts = np.sort(rng.choice(np.arange(1, seq_len), size=docs_per_row - 1, replace=False)) \
            if docs_per_row > 1 else np.array([], dtype=np.int64)
        row[starts - 1] = 2  # EOS ends the document before each start
        writer.add(row, doc_starts=starts)
    writer.close()
    return dest


def bench_recipe(dest: Path, model_cfg: dict, seq_len: int, device: str) -> Path:
    """tiny.yaml with the benchmark model; its cpt stage is what the trainer rows override."""
    from medllama.recipe import RECIPES_DIR

    raw = yaml.safe_load((RECIPES_DIR / "tiny.yaml").read_text())
    raw["name"] = "bench-train"
    raw["model"]["config"] = {**model_cfg, "max_position_embeddings": seq_len}
    raw["cpt"].update(precision="bf16" if device == "cuda" else "fp32", zero_stage=2, grad_accum=1,
                      nproc_per_node=1, save_every=0, keep_last=1, warmup_ratio=0.0, schedule="constant",
                      log_every=1)
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest


def parse_variant(text: str) -> dict:
    """`fused_optimizer=true,compile=true` → {"fused_optimizer": True, "compile": True} (values as YAML)."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: expected KEY=VALUE[,KEY=VALUE...] of cpt stage fields")
        out[key.strip()] = yaml.safe_load(value)
    return out


# --------------------------------------------------------------------------- rows
def steady(step_seconds: list[float], warmup: int, tokens_per_step: int) -> float:
    timed = step_seconds[warmup:]
    return tokens_per_step * len(timed) / sum(timed) if timed and sum(timed) > 0 else 0.0


def run_trainer(work: Path, assets: dict, mb: int, variant: str, steps: int, warmup: int, timeout: int) -> dict:
    from medllama.launch.command import train_argv
    from medllama.launch.local import TrainingFailed, start, wait

    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    overrides = {"cpt.micro_batch_size": mb, "cpt.max_steps": warmup + steps,
                 **{f"cpt.{k}": v for k, v in parse_variant(variant).items()}}
    argv = train_argv(str(assets["recipe"]), "cpt", assets["data"], assets["tokenizer"], None, out, overrides)
    log_path = work / f"medllama-mb{mb}-{len(list(work.glob('medllama-*.log')))}.log"
    t0 = time.perf_counter()
    proc = start(argv, 1, env={"MLFLOW_TRACKING_URI": ""})  # torchrun, one process: the real launch path
    try:
        with open(log_path, "w") as log, _timeout(timeout):
            wait(proc, "bench trainer row", stream=log)
    except (TrainingFailed, TimeoutError) as e:
        if proc.poll() is None:  # timed out: torchrun passes SIGTERM on to its worker
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return {"error": str(e)[-2000:], "log": log_path.name}
    m = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)  # a 1.1B checkpoint is ~18 GB: never keep one per row
    return {"step_seconds": m["step_seconds"], "flops_per_token": m["flops_per_token"], "n_params": m["n_params"],
            "wall_s": time.perf_counter() - t0, "final_loss": m["final_loss"]}


class _timeout:
    """A wall-clock limit (SIGALRM) around a blocking wait."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        import signal

        def fire(*_):
            raise TimeoutError(f"row exceeded {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, fire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        import signal

        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


def run_hf(work: Path, assets: dict, mb: int, compiled: bool, steps: int, warmup: int, device: str,
           model_cfg: dict, timeout: int) -> dict:
    spec = {"data": str(assets["data"]), "mb": mb, "compile": compiled, "steps": steps + warmup, "device": device,
            "model": model_cfg}
    proc = subprocess.run([sys.executable, __file__, "--hf-child", json.dumps(spec)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hf_child(spec: dict) -> None:
    """The plain loop (runs in its own process); prints one JSON line of per-step seconds."""
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from medllama.data.packed import PackedDataset

    device = torch.device(spec["device"])
    ds = PackedDataset(spec["data"])
    torch.manual_seed(1234)
    config = LlamaConfig(**spec["model"], vocab_size=ds.manifest.vocab_size, max_position_embeddings=ds.manifest.seq_len,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(config).to(device)
    model.train()
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0, fused=cuda)
    forward = torch.compile(model) if spec["compile"] else model
    mb, seconds = spec["mb"], []
    for step in range(spec["steps"]):
        t0 = time.perf_counter()  # like the trainer's step time, it includes reading the rows
        rows = [ds[(step * mb + i) % len(ds)] for i in range(mb)]
        ids = torch.from_numpy(np.stack([r["input_ids"] for r in rows])).to(device)
        pos = torch.from_numpy(np.stack([r["position_ids"] for r in rows])).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = forward(input_ids=ids, position_ids=pos, labels=ids, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # wait for the device: the step is over
        seconds.append(time.perf_counter() - t0)
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    print(json.dumps({"step_seconds": seconds, "final_loss": loss.item(), "peak_mem_gib": peak_mem}))


# --------------------------------------------------------------------------- the run
def environment(device: str) -> dict:
    import deepspeed
    import torch
    import transformers

    name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    return {"device": device, "device_name": name, "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "deepspeed": deepspeed.__version__, "transformers": transformers.__version__,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def bench(ns: argparse.Namespace, work: Path) -> dict:
    from medllama.train.metrics import flops_per_token, mfu, peak_flops

    model_cfg, vocab, seq = (TINY, TINY_VOCAB, TINY_SEQ) if ns.tiny else (LLAMA_1B, LLAMA_1B_VOCAB, LLAMA_1B_SEQ)
    seq = ns.seq_len or seq
    mbs = [int(x) for x in ns.micro_batch.split(",")]
    cuda = ns.device == "cuda"
    variants = ns.variant if ns.variant is not None else (CUDA_VARIANTS if cuda else [""])
    hf_modes = [False, True] if (cuda if ns.hf_compile is None else ns.hf_compile) else [False]
    assets = {"tokenizer": make_tokenizer(work / "tokenizer", vocab),
              "data": make_data(work / "data", (ns.steps + ns.warmup) * max(mbs) + 8, seq, vocab, ns.docs_per_row),
              "recipe": bench_recipe(work / "bench.yaml", model_cfg, seq, ns.device)}
    env = environment(ns.device)
    peak = peak_flops(env["device_name"] if cuda else "cpu")
    rows, fpt = [], None
    for mb in mbs:
        for compiled in hf_modes:
            r = run_hf(work, assets, mb, compiled, ns.steps, ns.warmup, ns.device, model_cfg, ns.timeout)
            rows.append({"impl": "hf", "variant": "compile" if compiled else "", "micro_batch": mb, **r})
        for variant in variants:
            r = run_trainer(work, assets, mb, variant, ns.steps, ns.warmup, ns.timeout)
            rows.append({"impl": "medllama", "variant": variant, "micro_batch": mb, **r})
            fpt = fpt or r.get("flops_per_token")
    if fpt is None:  # every trainer row failed: count the model the same way the trainer does
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        with torch.device("meta"):
            n = sum(p.numel() for p in LlamaForCausalLM(LlamaConfig(**model_cfg, vocab_size=vocab)).parameters())
        fpt = flops_per_token(n, model_cfg["num_hidden_layers"], model_cfg["hidden_size"], seq)
    for r in rows:
        r["tokens_per_s"] = steady(r["step_seconds"], ns.warmup, r["micro_batch"] * seq) if "step_seconds" in r else None
        r["mfu"] = mfu(r["tokens_per_s"], fpt, peak) if r["tokens_per_s"] else None
    return {**env, "model": {**model_cfg, "vocab_size": vocab, "seq_len": seq}, "tiny": ns.tiny,
            "flops_per_token": fpt, "peak_flops": peak, "steps": ns.steps, "warmup": ns.warmup,
            "docs_per_row": ns.docs_per_row, "command": " ".join(["python", "bench/train_throughput.py", *ns.argv]),
            "rows": rows}


def markdown(r: dict) -> str:
    def pct(x: float | None) -> str:
        return "—" if x is None else f"{100 * x:.1f}%"

    m = r["model"]
    title = (f"### {r['date']} · {r['device_name']} · {'tiny model' if r['tiny'] else 'Llama 1.1B'} "
             f"(hidden {m['hidden_size']}, {m['num_hidden_layers']} layers, vocab {m['vocab_size']}, seq {m['seq_len']})")
    setup = (f"torch {r['torch']}, deepspeed {r['deepspeed']}, transformers {r['transformers']}; "
             f"{r['steps']} timed steps after {r['warmup']} warm-up; peak {r['peak_flops'] or 'n/a'} FLOP/s; "
             f"`{r['command']}`")
    lines = [title, "", setup, "", "| row | variant | micro-batch | tokens/s | MFU |", "|---|---|---:|---:|---:|"]
    for row in r["rows"]:
        tps = "failed" if row.get("error") else f"{row['tokens_per_s']:,.0f}"
        lines.append(f"| {row['impl']} | {row['variant'] or 'default'} | {row['micro_batch']} | {tps} | {pct(row['mfu'])} |")
    return "\n".join(lines) + "\n"


def record(text: str, path: Path = RESULTS) -> None:
    """Append `text` at the end of the "## Training throughput" section, leaving other sections alone."""
    content = path.read_text() if path.exists() else ""
    if SECTION not in content:
        path.write_text(content.rstrip("\n") + ("\n\n" if content else "") + f"{SECTION}\n\n{text}")
        return
    head, _, rest = content.partition(SECTION)
    nxt = rest.find("\n## ")
    body, tail = (rest, "") if nxt < 0 else (rest[:nxt + 1], rest[nxt + 1:])
    path.write_text(head + SECTION + body.rstrip("\n") + "\n\n" + text + ("\n" + tail if tail else ""))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when available")
    p.add_argument("--tiny", action="store_true", help="a 2-layer model, seq 128 (CPU smoke)")
    p.add_argument("--micro-batch", default="4,8", help="comma-separated micro-batch sizes")
    p.add_argument("--steps", type=int, default=10, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=5,
                   help="untimed steps first (torch.compile recompiles over the first ~3 steps; allocator; JIT)")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--docs-per-row", type=int, default=1, help="documents packed per row (>1: restarting position_ids)")
    p.add_argument("--variant", action="append", default=None, metavar="K=V[,K=V]",
                   help="a trainer row with these cpt overrides (repeat; '' = recipe defaults); "
                        f"default on CUDA: {CUDA_VARIANTS}, on CPU: ['']")
    p.add_argument("--hf-compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the HF loop under torch.compile (default: on CUDA)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per row")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train.json")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    p.add_argument("--record", action="store_true", help=f"append the table to {RESULTS.name} ({SECTION!r})")
    p.add_argument("--from-json", type=Path, default=None,
                   help="measure nothing: print (and with --record, record) the table of an earlier --out file, "
                        "e.g. one brought back from the GPU machine")
    p.add_argument("--hf-child", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.hf_child:
        hf_child(json.loads(ns.hf_child))
        return 0
    if ns.from_json:
        table = markdown(json.loads(ns.from_json.read_text()))
        print(table)
        if ns.record:
            record(table)
        return 0
    import torch

    ns.device = ns.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if ns.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here; use --device cpu --tiny")
    ns.argv = argv
    with tempfile.TemporaryDirectory(prefix="train-bench-", dir=ns.workdir) as tmp:
        result = bench(ns, Path(tmp))
        logs = ns.out.parent / f"{ns.out.stem}-logs"  # the trainer rows' logs (recompiles, DeepSpeed config)
        logs.mkdir(parents=True, exist_ok=True)
        for log in Path(tmp).glob("medllama-*.log"):
            shutil.copy(log, logs / log.name)
        failed = [r for r in result["rows"] if r.get("error")]
        for r in failed:
            print(f"row {r['impl']} {r['variant'] or 'default'} mb{r['micro_batch']} failed:\n{r['error']}", file=sys.stderr)
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(result, indent=2))
    table = markdown(result)
    print(table)
    if ns.record:
        record(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
