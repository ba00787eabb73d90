"""Serving: a registered (or any HF) model behind KServe's OpenAI-compatible endpoint, with continuous batching."""

from medllama.serve.resolve import ServedModel, resolve

__all__ = ["ServedModel", "resolve", "serve"]


def serve(*args, **kwargs) -> None:
    """`medllama.serve.server.serve` (imports KServe and vLLM's protocol types only when called)."""
    from medllama.serve.server import serve as run

    run(*args, **kwargs)
