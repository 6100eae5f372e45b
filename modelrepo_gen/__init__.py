"""modelrepo_gen: build validated NVIDIA Triton model repositories from Hydra configs."""

__version__ = "0.1.0"
