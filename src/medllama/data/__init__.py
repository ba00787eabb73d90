"""Data preparation: sources → clean → dedup → tokenizer → mix → pack (one module each).

`prepare(recipe, output_dir)` is the stage's one entry point; `packed` is the on-disk format it writes.
"""

from medllama.data.prepare import PrepareResult, prepare
from medllama.data.sources import DataError

__all__ = ["prepare", "PrepareResult", "DataError"]
