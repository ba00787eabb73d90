"""The image components are declared with: the trainer image of the default cluster profile (cluster/).

The pipeline sets every task's image from the profile it is compiled for (pipelines/me_llama.py), so
the profile is the only place an image is named.
"""

from medllama.cluster import load_profile

MEDLLAMA_IMAGE = load_profile().images.trainer
