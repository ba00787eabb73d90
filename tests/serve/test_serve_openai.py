"""`medllama serve` as a real process on a loopback port, called with the official `openai` client."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import httpx
import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from medllama.data.instructions import Example, build_example
from medllama.recipe import load_recipe
from medllama.registry import DATA_USE_NOTE
from medllama.registry.card import DEFAULT_AGREEMENT

from .conftest import ALIAS, MODEL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def _greedy(client, prompt: str, max_tokens: int, **kw):
    return client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0, **kw)


def test_models_lists_the_registered_version_and_its_data_use_agreement(client, registered):
    """Served from models:/NAME@ALIAS on the real MLflow server: the entry names what the registry holds."""
    (entry,) = client.models.list().data
    assert entry.id == MODEL and entry.owned_by == "medllama-ops"
    extra = entry.model_extra
    assert (extra["registry_name"], extra["registry_version"]) == (MODEL, registered.version)
    assert extra["data_use_agreement"] == DATA_USE_NOTE and extra["agreement"] == DEFAULT_AGREEMENT
    assert extra["root"] == f"models:/{MODEL}@{ALIAS}" and extra["max_model_len"] == 256


def test_greedy_completion_is_the_models_greedy_continuation_with_usage(client, tiny_served_dir):
    out = _greedy(client, "The patient was given", 12, extra_body={"return_token_ids": True})
    prompt_ids = out.choices[0].model_extra["prompt_token_ids"]
    assert out.usage.prompt_tokens == len(prompt_ids)
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens

    tok = AutoTokenizer.from_pretrained(tiny_served_dir)
    assert prompt_ids == tok("The patient was given", add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(tiny_served_dir, dtype=torch.float32).eval()
    ref = model.generate(torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=12, pad_token_id=tok.pad_token_id)
    new = ref[0, len(prompt_ids):].tolist()
    assert out.choices[0].text == tok.decode(new, skip_special_tokens=True)
    assert out.usage.completion_tokens == len(new)
    assert out.choices[0].finish_reason == ("stop" if new[-1] == tok.eos_token_id else "length")


def test_streaming_gives_the_same_text_and_a_usage_chunk(client):
    whole = _greedy(client, "Blood pressure", 16)
    chunks = list(_greedy(client, "Blood pressure", 16, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason


def test_chat_streaming_and_not(client):
    messages = [{"role": "user", "content": "What is hypertension?"}]
    whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0)
    assert whole.choices[0].message.role == "assistant" and whole.usage.completion_tokens >= 1
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


@pytest.mark.parametrize("history", [[], [{"role": "system", "content": "Answer briefly."},
                                          {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."}]])
def test_chat_prompt_tokens_equal_the_sft_prompt_tokens(client, tiny_served_dir, history):
    """The served chat prompt is token for token the prompt SFT rows were trained on."""
    messages = [*history, {"role": "user", "content": "  List two causes of anemia. "}]
    out = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1, extra_body={"return_token_ids": True})
    served = out.model_extra["prompt_token_ids"]

    tok = AutoTokenizer.from_pretrained(tiny_served_dir)
    spec = load_recipe("tiny").data
    context = "\n".join(f"{m['role']}: {m['content']}" for m in history)
    ids, labels = build_example(tok, Example("List two causes of anemia.", context, "Iron deficiency."), spec, Counter())
    prompt_len = int((labels != -100).nonzero()[0][0])
    assert served == ids[:prompt_len].tolist()
    assert out.usage.prompt_tokens == prompt_len


def test_stop_string_ends_the_answer_before_it(client):
    text = _greedy(client, "Clinical notes", 24).choices[0].text
    stop = next(w for w in re.findall(r"\S{2,}", text[3:]))  # a piece of the greedy answer past its start
    cut = text.index(stop)
    out = _greedy(client, "Clinical notes", 24, stop=[stop])
    assert out.choices[0].text == text[:cut] and out.choices[0].finish_reason == "stop"
    streamed = list(_greedy(client, "Clinical notes", 24, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == text[:cut]


def test_seed_makes_sampling_reproducible(client):
    def sample(seed):
        return client.completions.create(model=MODEL, prompt="Diagnosis", max_tokens=16, temperature=1.0,
                                         top_p=0.95, seed=seed).choices[0].text

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)


def test_eight_concurrent_clients_get_their_own_answers_as_if_alone(server, client):
    prompts = [f"Case {i}: the patient reports" for i in range(8)]
    limits = [6 + 2 * i for i in range(8)]
    alone = [_greedy(client, p, n) for p, n in zip(prompts, limits)]
    results: dict[int, object] = {}
    start = threading.Barrier(8)

    def ask(i: int) -> None:
        own = server.client()  # one connection per user
        start.wait()
        results[i] = _greedy(own, prompts[i], limits[i], stream=i % 2 == 1, stream_options={"include_usage": True} if i % 2 else None)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i in range(8):
        if i % 2:  # streamed
            chunks = list(results[i])
            assert "".join(c.choices[0].text for c in chunks if c.choices) == alone[i].choices[0].text
            assert chunks[-1].usage.completion_tokens == alone[i].usage.completion_tokens <= limits[i]
        else:
            assert results[i].choices[0].text == alone[i].choices[0].text
            assert results[i].usage.completion_tokens == alone[i].usage.completion_tokens <= limits[i]


def _metric(server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def test_a_client_that_disconnects_frees_its_slot(server, client):
    whole = _greedy(client, "Discharge summary", 120)
    assert whole.usage.completion_tokens == 120  # the full answer runs to its limit
    before = _metric(server, "medllama_serve_generated_tokens_total")
    body = {"model": MODEL, "prompt": "Discharge summary", "max_tokens": 120, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.openai_url}/completions", json=body, timeout=30) as r:
        next(r.iter_lines())  # the first event: generation is under way; then hang up
    time.sleep(1.0)
    assert _metric(server, "medllama_serve_requests_running") == 0
    assert _metric(server, "medllama_serve_generated_tokens_total") - before < 120
    assert _greedy(client, "Discharge summary", 4).usage.completion_tokens == 4  # and it serves on


# --- bad requests: OpenAI's error shape, never a 500, and the server stays up ----------------------------

def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError, match="nope"):
        client.completions.create(model="nope", prompt="x", max_tokens=2)


def test_prompt_plus_max_tokens_over_the_context_is_400(client):
    with pytest.raises(openai.BadRequestError, match="maximum context length is 256") as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=300)
    assert e.value.body["param"] == "max_tokens"


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL, "prompt": "x", "max_tokens": "many"}, "max_tokens"),
    ({"model": MODEL, "messages": "hello"}, "messages"),
    ({"model": MODEL, "prompt": "x", "temperature": 5}, "temperature"),
    ({"model": MODEL, "prompt": "x", "n": 2}, "n"),
    ({"model": MODEL, "prompt": ["a", "b"]}, "prompt"),
    ({"model": MODEL, "messages": [{"role": "assistant", "content": "x"}]}, "messages"),
])
def test_malformed_requests_are_400_naming_the_field(server, body, param):
    route = "chat/completions" if "messages" in body else "completions"
    error = _error(httpx.post(f"{server.openai_url}/{route}", json=body), 400)
    assert param in (error["param"] or "") or param in error["message"]


def test_malformed_json_is_400(server):
    error = _error(httpx.post(f"{server.openai_url}/completions", content=b'{"model": MODEL, "prompt": ',
                              headers={"content-type": "application/json"}), 400)
    assert "JSON" in error["message"]


@pytest.mark.parametrize("path, body", [
    (f"/v1/models/{MODEL}:predict", {"instances": [[1, 2]]}),
    (f"/v2/models/{MODEL}/infer", {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}),
])
def test_v1_v2_inference_is_400_naming_the_openai_routes(server, path, body):
    error = _error(httpx.post(f"{server.url}{path}", json=body), 400)
    assert "/openai/v1/chat/completions" in error["message"]
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
