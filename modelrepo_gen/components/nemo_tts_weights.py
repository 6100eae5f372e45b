"""A FastPitch or HiFi-GAN .nemo file's weights, renamed onto this project's networks.

FastPitch: NeMo's FFTransformer layers (`dec_attn`, `pos_ff.CoreNet.0/2`), its predictors'
`layers.N.conv/norm` and the pitch / energy embeddings map one to one onto networks/fastpitch.py.
HiFi-GAN: NeMo keeps the generator's convolutions weight-normed (`weight_g` and `weight_v`, or
torch's newer `parametrizations.weight.original0/1`); they are folded into plain weights
exactly as torch computes them, and NeMo's grouped `resblocks.I.J` become the flat
`resblocks.I*K+J`. What NeMo keeps for training only (the aligner, the discriminators, the mel
extractors, pitch statistics) is left; anything else that does not fit is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from modelrepo_gen.components.nemo_weights import fitted_weights, nemo_state_dict
from modelrepo_gen.loaders.nemo_archive import NemoArchive

FFT = r"(encoder|decoder)"  # the two FFTransformers: our `attention.N` / `feed_forward.N`
FF = r"layers.\2.pos_ff"
FASTPITCH_RENAMES = (
    (r"embedding\.(\w+)", r"fastpitch.encoder.word_emb.\1"),
    (rf"{FFT}\.attention\.(\d+)\.(\w+)\.(\w+)", r"fastpitch.\1.layers.\2.dec_attn.\3.\4"),
    (rf"{FFT}\.feed_forward\.(\d+)\.conv1\.(\w+)", rf"fastpitch.\1.{FF}.CoreNet.0.\3"),
    (rf"{FFT}\.feed_forward\.(\d+)\.conv2\.(\w+)", rf"fastpitch.\1.{FF}.CoreNet.2.\3"),
    (rf"{FFT}\.feed_forward\.(\d+)\.layer_norm\.(\w+)", rf"fastpitch.\1.{FF}.layer_norm.\3"),
    (r"(\w+_predictor)\.convs\.(\d+)\.(\w+)", r"fastpitch.\1.layers.\2.conv.\3"),
    (r"(\w+_predictor)\.norms\.(\d+)\.(\w+)", r"fastpitch.\1.layers.\2.norm.\3"),
    (r"(\w+_predictor)\.fc\.(\w+)", r"fastpitch.\1.fc.\2"),
    (r"(pitch|energy)_embedding\.(\w+)", r"fastpitch.\1_emb.\2"),
    (r"proj\.(\w+)", r"fastpitch.proj.\1"),
)
FASTPITCH_TRAINING = re.compile(
    r"(fastpitch\.)?aligner\..*|preprocessor\..*|fastpitch\.pitch_(mean|std)"
    r"|fastpitch\.(encoder|decoder)\.pos_emb\.inv_freq"
)
HIFIGAN_TRAINING = re.compile(r"(mpd|msd|audio_to_melspec_precessor|trg_melspec_fn)\..*")
WEIGHT_NORM = (  # (magnitude, direction) suffixes of a weight-normed tensor
    (".weight_g", ".weight_v"),
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
)


def fastpitch_nemo_name(ours: str) -> str:
    """The NeMo name of one tensor of FastPitch's state dict."""
    for pattern, replacement in FASTPITCH_RENAMES:
        if re.fullmatch(pattern, ours):
            return re.sub(pattern, replacement, ours)
    raise AssertionError(f"no NeMo name for {ours}")  # a tensor this map does not know: a bug


def fastpitch_weights(archive: NemoArchive, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The FastPitch network's state dict from a FastPitchModel .nemo."""
    return fitted_weights(
        archive,
        nemo_state_dict(archive),
        module,
        fastpitch_nemo_name,
        lambda theirs: FASTPITCH_TRAINING.fullmatch(theirs) is not None,
    )


def folded_weight_norm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with each weight-normed pair replaced by the weight it stands for (over dim 0,
    torch's default and NeMo's)."""
    folded = dict(state)
    for magnitude_suffix, direction_suffix in WEIGHT_NORM:
        for name in [n for n in state if n.endswith(magnitude_suffix)]:
            stem = name[: -len(magnitude_suffix)]
            direction = state.get(stem + direction_suffix)
            if direction is None or direction.dim() != state[name].dim():
                continue  # left as it is: reported as unused
            folded[stem + ".weight"] = torch._weight_norm(direction, state[name], 0)
            del folded[name], folded[stem + direction_suffix]
    return folded


def hifigan_nemo_name(ours: str, kernels: int) -> str:
    """The NeMo name of one tensor of HiFi-GAN's state dict (weight norm folded)."""
    if match := re.fullmatch(r"resblocks\.(\d+)\.(.+)", ours):
        index = int(match.group(1))
        return f"generator.resblocks.{index // kernels}.{index % kernels}.{match.group(2)}"
    return f"generator.{ours}"


def hifigan_weights(
    archive: NemoArchive, module: torch.nn.Module, kernels: int
) -> dict[str, torch.Tensor]:
    """The HiFi-GAN network's state dict from a HifiGanModel .nemo (`kernels`: residual blocks
    per upsampling layer)."""

    return fitted_weights(
        archive,
        folded_weight_norm(nemo_state_dict(archive)),
        module,
        lambda ours: hifigan_nemo_name(ours, kernels),
        lambda theirs: HIFIGAN_TRAINING.fullmatch(theirs) is not None,
    )
