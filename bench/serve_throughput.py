"""Tokens/s of `medllama serve` under 8 concurrent streaming clients, against three baselines, one run.

    .venv/bin/python bench/serve_throughput.py [--clients 8] [--requests-per-client 4] [--out bench/serve_throughput.json]

Same model, same prompts, 64 new tokens each, greedy, EOS ignored (the tokenizer has none), so every request
generates exactly 64 tokens:
- serve:       `medllama serve` (KServe ModelServer, requests batched between decode steps), 8 clients
               streaming with the `openai` client, each sending its requests one after another;
- (a) serial:  the same server with `--no-batching` (one request at a time), same clients;
- (b) static:  offline HF `generate` in static batches of 8 (the prompts have one length: no padding);
- (c) cb:      transformers' `generate_batch` (continuous batching, paged KV cache) over all prompts at
               once, with room for 16 requests.
TTFT = request sent → first text chunk; ITL = mean gap between text chunks of a request. The model is a
random-init ~33M Llama (hidden 512, 8 layers, 8 heads, intermediate 1376, vocab 8000) with a word-level
tokenizer whose every id decodes to a word, saved in a temporary folder; nothing is downloaded.
On a GPU the server and the offline baselines all load it in bf16 on the GPU, as `medllama serve` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=1376, vocab_size=8000)
NEW_TOKENS = 64
PROMPT_LEN = 32


def build_model(dest: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**MODEL, num_key_value_heads=8, max_position_embeddings=512)).save_pretrained(dest)
    vocab = {f"w{i}": i for i in range(MODEL["vocab_size"] - 1)} | {"<unk>": MODEL["vocab_size"] - 1}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>").save_pretrained(dest)
    return dest


def prompts(n: int) -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(10, MODEL["vocab_size"] - 1) for _ in range(PROMPT_LEN)] for _ in range(n)]


async def _client(url: str, work: list[list[int]], rows: list[dict]) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="-", max_retries=0, timeout=600)
    for prompt in work:
        t0 = time.perf_counter()
        stamps, tokens = [], 0
        stream = await client.completions.create(model="bench", prompt=prompt, max_tokens=NEW_TOKENS, temperature=0,
                                                 stream=True, stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].text:
                stamps.append(time.perf_counter())
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        rows.append({"ttft": stamps[0] - t0, "itl": statistics.mean(gaps) if gaps else 0.0, "tokens": tokens})
    await client.close()


def run_server(model_dir: Path, all_prompts: list[list[int]], clients: int, batching: bool) -> dict:
    from servers import free_port, http_server

    port = free_port()
    cmd = [sys.executable, "-m", "medllama.cli", "serve", "--model", str(model_dir), "--name", "bench",
           "--port", str(port), *([] if batching else ["--no-batching"])]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with http_server(cmd, f"http://127.0.0.1:{port}/v2/health/ready", "medllama serve", env=env, timeout=300):
        url = f"http://127.0.0.1:{port}/openai/v1"
        asyncio.run(_run_clients(url, all_prompts[:clients], [], 1))  # warm-up: one request per client
        rows: list[dict] = []
        t0 = time.perf_counter()
        asyncio.run(_run_clients(url, all_prompts, rows, clients))
        seconds = time.perf_counter() - t0
    ttft = sorted(r["ttft"] for r in rows)
    return {"tokens": sum(r["tokens"] for r in rows), "seconds": seconds,
            "tokens_per_s": sum(r["tokens"] for r in rows) / seconds,
            "ttft_p50_s": ttft[len(ttft) // 2], "ttft_p99_s": ttft[min(len(ttft) - 1, int(len(ttft) * 0.99))],
            "itl_mean_s": statistics.mean(r["itl"] for r in rows), "requests": len(rows)}


async def _run_clients(url: str, all_prompts: list[list[int]], rows: list[dict], clients: int) -> None:
    share = [all_prompts[i::clients] for i in range(clients)]
    await asyncio.gather(*(_client(url, work, rows) for work in share))


def load_like_the_server(model_dir: Path):
    """The model as `medllama serve` loads it: bf16 on a GPU, fp32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()


def run_static(model_dir: Path, all_prompts: list[list[int]], batch: int) -> dict:
    import torch

    model = load_like_the_server(model_dir)
    kw = dict(do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, eos_token_id=None, pad_token_id=0)
    with torch.inference_mode():
        model.generate(torch.tensor(all_prompts[:batch], device=model.device), **kw)  # warm-up
        t0, tokens = time.perf_counter(), 0
        for i in range(0, len(all_prompts), batch):
            out = model.generate(torch.tensor(all_prompts[i:i + batch], device=model.device), **kw)
            tokens += out[:, PROMPT_LEN:].numel()
    seconds = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def run_generate_batch(model_dir: Path, all_prompts: list[list[int]]) -> dict:
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    model = load_like_the_server(model_dir)
    generation = GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, eos_token_id=-1)
    pages = -(-model.config.max_position_embeddings // 32)  # 32-token pages, a full context for each of 16
    config = ContinuousBatchingConfig(page_size=32, num_blocks=pages * 16, max_batch_tokens=512,
                                      use_async_batching=False, max_requests_per_batch=16)
    model.generate_batch(all_prompts[:8], generation_config=generation, continuous_batching_config=config)  # warm-up
    t0 = time.perf_counter()
    out = model.generate_batch(all_prompts, generation_config=generation, continuous_batching_config=config)
    seconds = time.perf_counter() - t0
    tokens = sum(len(r.generated_tokens) for r in out.values())
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import torch

    all_prompts = prompts(args.clients * args.requests_per_client)
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        model_dir = build_model(Path(tmp) / "model")
        results = {
            "serve": run_server(model_dir, all_prompts, args.clients, batching=True),
            "a_serial": run_server(model_dir, all_prompts, args.clients, batching=False),
            "b_static_hf_generate": run_static(model_dir, all_prompts, args.clients),
            "c_generate_batch": run_generate_batch(model_dir, all_prompts),
        }
    serve = results["serve"]["tokens_per_s"]
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0],
        "requests": len(all_prompts), "new_tokens": NEW_TOKENS, "prompt_tokens": PROMPT_LEN, "results": results,
        "serve_vs_a": serve / results["a_serial"]["tokens_per_s"],
        "serve_vs_b": serve / results["b_static_hf_generate"]["tokens_per_s"],
        "serve_vs_c": serve / results["c_generate_batch"]["tokens_per_s"],
    }
    for name, r in results.items():
        extra = (f"  TTFT p50 {r['ttft_p50_s'] * 1000:.0f} ms p99 {r['ttft_p99_s'] * 1000:.0f} ms  ITL "
                 f"{r['itl_mean_s'] * 1000:.1f} ms") if "ttft_p50_s" in r else ""
        print(f"{name:<22} {r['tokens_per_s']:8.1f} tok/s  ({r['tokens']} tokens in {r['seconds']:.1f} s){extra}")
    print(f"serve / (a) = {summary['serve_vs_a']:.2f}x   serve / (b) = {summary['serve_vs_b']:.2f}x   "
          f"serve / (c) = {summary['serve_vs_c']:.2f}x   (targets: >= 5x (a), >= 1x (b))")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
