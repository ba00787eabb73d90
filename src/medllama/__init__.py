"""medllama-ops: build, evaluate and register medical LLMs the Me-LLaMA way."""

__version__ = "0.1.0"
