"""Training: `python -m medllama.train` runs one stage of a recipe under DeepSpeed (see loop.run)."""
