"""Serving: a registered (or any HF) model behind KServe's OpenAI-compatible endpoint, with requests batched between decode steps."""

import json
import shlex

from medllama.serve.resolve import ServedModel, resolve

__all__ = ["ServedModel", "how_to_call", "resolve", "serve"]


def serve(ref: str, port: int = 8080, tracking_uri: str | None = None, name: str | None = None,
          batching: bool = True, usage_url: str | None = None) -> None:
    """Resolve `ref` (a bad one fails here, in seconds), then serve it until interrupted on 0.0.0.0:`port`."""
    served = resolve(ref, tracking_uri, name)
    from medllama.serve.server import serve_model  # KServe and vLLM's protocol types: a slow import

    serve_model(served, port, batching, usage_url)


def how_to_call(name: str, version: str, tracking_uri: str, port: int = 8080) -> str:
    """The commands that serve a registered version and ask it something (printed after `make demo`)."""
    serve_cmd = ["medllama", "serve", "--model", f"models:/{name}/{version}", "--port", str(port)]
    if not tracking_uri.startswith("sqlite:///"):  # the local store is the default
        serve_cmd += ["--tracking-uri", tracking_uri]
    body = {"model": name, "messages": [{"role": "user", "content": "What are the symptoms of anemia?"}],
            "max_tokens": 64}
    url = f"http://localhost:{port}/openai/v1"
    return "\n".join([
        f"  {shlex.join(serve_cmd)}        (or: make serve)",
        f"  curl -s {url}/chat/completions -H 'content-type: application/json' -d {shlex.quote(json.dumps(body))}",
        f"  python -c \"import openai; c = openai.OpenAI(base_url='{url}', api_key='-'); "
        f"print(c.completions.create(model='{name}', prompt='Anemia is', max_tokens=32).choices[0].text)\"",
    ])
