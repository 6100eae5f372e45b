"""Speech-synthesis test helpers: the small networks as conf/ declares them, symbol batches,
and a Tacotron 2 whose stop gate ends different items at different steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from helpers.project import compose_config
from modelrepo_gen.components import COMPONENTS, register_builtin_components
from modelrepo_gen.components.base import NetworkComponent
from modelrepo_gen.core.validation import typed

register_builtin_components()


def model_node(model: str) -> dict:
    """conf/model/<model>.yaml as Hydra composes it (a *_mini file extends its full size)."""
    return OmegaConf.to_container(compose_config([f"model={model}"]).model, resolve=True)


def settings_of(model: str, **changes: Any) -> Any:
    """The typed settings of conf/model/<model>.yaml, with `changes` applied."""
    node = model_node(model)
    component = COMPONENTS.get(node.pop("component"))
    return typed(component.settings_schema, {**node, **changes}, f"model {model}")


def module_of(model: str, seed: int = 0, **changes: Any) -> torch.nn.Module:
    settings = settings_of(model, **changes)
    component = COMPONENTS.get(model_node(model)["component"])
    assert isinstance(component, NetworkComponent)
    return component.make_module(settings, seed)


def symbol_batch(counts: list[int], seed: int = 0, n_symbols: int = 148) -> list[torch.Tensor]:
    """Ids [B, max count] (zero-padded like the server pads) and counts [B, 1]."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(counts), max(counts), dtype=torch.int64)
    for i, count in enumerate(counts):
        ids[i, :count] = torch.randint(1, n_symbols, (count,), generator=generator)
    return [ids, torch.tensor(counts, dtype=torch.int32).view(-1, 1)]


def gate_logits(module: torch.nn.Module, ids: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The stop gate's logit of every item at every step up to max_decoder_steps: [steps, B].

    They do not depend on where items stop (a stopped item keeps computing with the batch)."""
    decoder = module.decoder
    threshold, decoder.gate_threshold = decoder.gate_threshold, 2.0  # never fires
    logits = []
    hook = decoder.gate_layer.register_forward_hook(lambda m, i, out: logits.append(out.view(-1)))
    try:
        with torch.no_grad():
            module(ids, counts)
    finally:
        hook.remove()
        decoder.gate_threshold = threshold
    return torch.stack(logits)


def stop_items_apart(module: torch.nn.Module, ids: torch.Tensor, counts: torch.Tensor) -> list:
    """Make `module`'s gate end the items of this batch at different steps; their stop steps
    (None: never, truncated at max_decoder_steps) are returned.

    A seeded decoder settles into a fixed point within a few steps, so its gate fires at the
    first step or never. Scaled up threefold its gate logit first rises then falls at an
    item-dependent pace; a gate that fires when the logit falls below a level then ends the
    items at different steps. The level is chosen to spread the stops as widely as it can.
    """
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.startswith(("decoder.", "encoder.lstm.")):
                parameter.mul_(3.0)
    logits = gate_logits(module, ids, counts)
    steps = logits.size(0)

    def stops(level: float) -> list:
        below = (logits < level).T
        return [int(item.nonzero()[0]) + 1 if item.any() else None for item in below]

    def spread(level: float) -> tuple:
        found = stops(level)
        ended = [s for s in found if s is not None]
        return (len(set(found)), min(ended, default=0) > 1, len(ended))

    candidates = torch.quantile(logits[1:].flatten(), torch.linspace(0.02, 0.98, 49)).tolist()
    level = max(candidates, key=spread)
    with torch.no_grad():
        gate = module.decoder.gate_layer
        gate.weight.neg_()  # logit' = level - logit: positive (fires) once logit < level
        gate.bias.copy_(level - gate.bias)
    assert steps == module.decoder.max_decoder_steps
    return stops(level)


# Both voices' chains in one team pipeline (its own --config-dir), at the small sizes: Tacotron 2
# -> WaveGlow (the caller's noise) and FastPitch -> HiFi-GAN, from the same symbols.
VOICES_PIPELINE = """\
# @package _global_
defaults:
  - /model@pipeline.models.tacotron2: tacotron2_mini
  - /model@pipeline.models.waveglow: waveglow_mini
  - /model@pipeline.models.fastpitch: fastpitch_mini
  - /model@pipeline.models.hifigan: hifigan_mini
  - _self_

pipeline:
  name: voices
  ensemble:
    inputs: [SYMBOL_IDS, SYMBOL_COUNT, PACE, NOISE]
    outputs: [T2_MEL, T2_MEL_LENGTH, STOPPED, WG_AUDIO, WG_AUDIO_LENGTH,
              FP_MEL, FP_MEL_LENGTH, HG_AUDIO, HG_AUDIO_LENGTH]
    steps:
      - model: tacotron2
        inputs: [SYMBOL_IDS, SYMBOL_COUNT]
        outputs: {MEL: T2_MEL, MEL_LENGTH: T2_MEL_LENGTH, STOPPED: STOPPED}
      - model: waveglow
        inputs: {MEL: T2_MEL, MEL_LENGTH: T2_MEL_LENGTH, NOISE: NOISE}
        outputs: {AUDIO: WG_AUDIO, AUDIO_LENGTH: WG_AUDIO_LENGTH}
      - model: fastpitch
        inputs: [SYMBOL_IDS, SYMBOL_COUNT, PACE]
        outputs: {MEL: FP_MEL, MEL_LENGTH: FP_MEL_LENGTH}
      - model: hifigan
        inputs: {MEL: FP_MEL, MEL_LENGTH: FP_MEL_LENGTH}
        outputs: {AUDIO: HG_AUDIO, AUDIO_LENGTH: HG_AUDIO_LENGTH}
"""
VOICE_COUNTS = [23, 14, 7, 3]  # symbols per request


def write_voices_conf(folder: Path) -> Path:
    conf = folder / "conf"
    (conf / "pipeline").mkdir(parents=True)
    (conf / "pipeline" / "voices.yaml").write_text(VOICES_PIPELINE)
    return conf


def write_tacotron2_checkpoint(path: Path) -> list:
    """A tacotron2_mini state dict whose gate stops VOICE_COUNTS' requests apart; their stops."""
    module = module_of("tacotron2_mini")
    stops = stop_items_apart(module, *symbol_batch(VOICE_COUNTS))
    torch.save(module.state_dict(), path)
    return stops


# Parity shapes of the build: symbols for the acoustic models (15 a second), mel frames for the
# vocoders (86 a second).
VOICES_PARITY_SHAPES = [(1, 0.3), (4, 1.0), (2, 1.6)]


@dataclass(frozen=True)
class VoicesBuild:
    repository: Path
    checkpoint: Path  # tacotron2_mini's, with a gate that stops VOICE_COUNTS apart
    stops: list  # the step each of VOICE_COUNTS stops at (None: cut at max_decoder_steps)
    stdout: str
