"""The container image every component and training pod runs: the trainer image built from images/.

Overridable at compile time (MEDLLAMA_IMAGE) so a platform team can point at its own registry.
"""

import os

MEDLLAMA_IMAGE = os.environ.get("MEDLLAMA_IMAGE", "ghcr.io/medllama-ops/medllama:0.1.0")
