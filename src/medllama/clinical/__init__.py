"""Complex clinical cases beyond the automatic matcher: a judge model's verdicts, and human rating with agreement."""
