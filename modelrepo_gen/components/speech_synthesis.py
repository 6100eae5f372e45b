"""What the speech-synthesis networks share: weights from the project's own state dicts, and
example inputs for export and parity (symbols for acoustic models, mel frames for vocoders)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from modelrepo_gen.components.base import Weights
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.state_dict import check_fits, load_checkpoint, read_state_dict

SYMBOLS_PER_SECOND = 15  # characters of read English speech: parity `seconds` -> symbol count
EXAMPLE_PACES = (1.0, 0.8, 1.25)  # FastPitch examples: faster, slower, as trained
EXAMPLE_SIGMA = 0.6  # WaveGlow examples: the noise scale of NVIDIA's inference scripts


def checkpoint_path(settings: Any) -> Path | None:
    return Path(settings.checkpoint).expanduser().resolve() if settings.checkpoint else None


def with_weights(module: torch.nn.Module, settings: Any) -> torch.nn.Module:
    """`module` (seeded) with the checkpoint's weights when one is set, in eval mode."""
    if checkpoint := checkpoint_path(settings):
        load_checkpoint(module, checkpoint, f"model '{settings.name}'")
    return module.eval()


def state_dict_weights(
    settings: Any, where: str, seed: int, skeleton: Callable[[], torch.nn.Module], makes: str
) -> Weights:
    """Where the weights come from; a checkpoint that does not fit stops before any work."""
    checkpoint = checkpoint_path(settings)
    if checkpoint is None:
        return Weights(
            {"source": "random", "seed": seed},
            f"WARNING: {where}.checkpoint is not set: '{settings.name}' uses seeded random "
            f"weights (seed={seed}). The repository serves real plumbing but meaningless "
            f"{makes}; pass {where}.checkpoint=PATH for a trained model.",
        )
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        module = skeleton()
    try:
        check_fits(read_state_dict(checkpoint), module, checkpoint, f"model '{settings.name}'")
    except UserError as error:  # the loaders say model.checkpoint: name the key the user set
        raise UserError(str(error).replace("model.checkpoint", f"{where}.checkpoint")) from None
    return Weights({"source": "checkpoint", "path": str(checkpoint)})


def _lengths(batch: int, longest: int) -> list[int]:
    """Different lengths, the first the longest, as a ragged batch has them."""
    return [max(1, longest - i * longest // (2 * batch)) for i in range(batch)]


def example_symbols(batch: int, seconds: float, seed: int, n_symbols: int) -> list[torch.Tensor]:
    """Symbol ids [B, N] (zero past each count, as the runner pads) and counts [B, 1]."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(2, round(seconds * SYMBOLS_PER_SECOND))
    ids = torch.randint(1, n_symbols, (batch, longest), generator=generator)
    counts = torch.tensor(_lengths(batch, longest), dtype=torch.int32).view(-1, 1)
    ids = ids * (torch.arange(longest).unsqueeze(0) < counts)
    return [ids, counts]


def example_paces(batch: int) -> torch.Tensor:
    return torch.tensor([EXAMPLE_PACES[i % len(EXAMPLE_PACES)] for i in range(batch)]).view(-1, 1)


def example_mel(
    batch: int, seconds: float, seed: int, n_mel: int, frames_per_second: float
) -> list[torch.Tensor]:
    """Log-mel-like frames [B, n_mel, T] (zero past each length) and lengths [B, 1]."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(2, round(seconds * frames_per_second))
    mel = -5.0 + 2.0 * torch.randn(batch, n_mel, longest, generator=generator)
    lengths = torch.tensor(_lengths(batch, longest), dtype=torch.int32).view(-1, 1)
    mel = mel * (torch.arange(longest).view(1, 1, -1) < lengths.view(-1, 1, 1))
    return [mel, lengths]


def example_noise(mel_lengths: torch.Tensor, hop_length: int, seed: int) -> torch.Tensor:
    """Gaussian noise scaled by sigma, one value per audio sample of the longest item."""
    generator = torch.Generator().manual_seed(seed + 1)
    samples = int(mel_lengths.max()) * hop_length
    return EXAMPLE_SIGMA * torch.randn(mel_lengths.size(0), samples, generator=generator)
