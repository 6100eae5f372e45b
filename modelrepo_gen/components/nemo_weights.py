"""A .nemo file's model_weights.ckpt, renamed onto this project's modules and checked.

NeMo names an encoder block's layers by position in one list (`encoder.encoder.3.mconv.5`):
per repeated unit a depthwise and a pointwise convolution (separable) or one convolution, a
batch norm, then activation and dropout between units, and squeeze-and-excitation last. The
map below walks that list for each block, so every tensor of the network has exactly one NeMo
name. Weights that do not fit are refused with the NeMo names listed.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from modelrepo_gen.components.networks.conv_asr import ConvBlockConfig
from modelrepo_gen.core.errors import UserError, first_line
from modelrepo_gen.loaders.checkpoint_file import refused_pickle
from modelrepo_gen.loaders.nemo_archive import WEIGHTS, NemoArchive

SHOWN = 6
FEATURIZER_WINDOW = "preprocessor.featurizer.window"
FEATURIZER_FILTERBANK = "preprocessor.featurizer.fb"
UNIT = re.compile(r"blocks\.(\d+)\.units\.(\d+)\.(depthwise\.conv|pointwise|norm)\.(\w+)")
RESIDUAL = re.compile(r"blocks\.(\d+)\.residuals\.(\d+)\.([01])\.(\w+)")
SQUEEZE = re.compile(r"blocks\.(\d+)\.se\.fc\.([02])\.weight")
CLASSIFIER = re.compile(r"classifier\.(weight|bias)")


@functools.lru_cache(maxsize=2)
def _load(weights: Path, size: int, mtime_ns: int) -> Mapping[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        if refused := refused_pickle(error):  # torch's own first line says weights_only=False
            raise UserError(f"{WEIGHTS} was not loaded: {refused}") from None
        first = first_line(error)
        raise UserError(f"cannot read {WEIGHTS}: {first}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise UserError(f"{WEIGHTS} holds no state dict (names to tensors)")
    return state


def nemo_state_dict(archive: NemoArchive) -> Mapping[str, torch.Tensor]:
    """The archive's weights as NeMo saved them; UserError naming the file if unreadable."""
    stat = archive.weights.stat()
    try:
        return _load(archive.weights, stat.st_size, stat.st_mtime_ns)
    except UserError as error:
        raise UserError(f"{archive.label} {archive.path}: {error}") from None


def _unit_layers(block: ConvBlockConfig) -> tuple[list[tuple[int, int | None, int]], int]:
    """Per unit (conv index, pointwise index or None, norm index) in NeMo's mconv list, and
    the index after the last unit (squeeze-and-excitation)."""
    layers, index = [], 0
    for unit in range(block.repeat):
        if block.separable:
            layers.append((index, index + 1, index + 2))
            index += 3
        else:
            layers.append((index, None, index + 1))
            index += 2
        if unit < block.repeat - 1:
            index += 2  # activation and dropout
    return layers, index


def nemo_name(name: str, blocks: list[ConvBlockConfig]) -> str:
    """The NeMo name of one tensor of ConvASR's state dict."""
    if match := UNIT.fullmatch(name):
        block, unit, layer, tensor = match.groups()
        conv, pointwise, norm = _unit_layers(blocks[int(block)])[0][int(unit)]
        prefix = f"encoder.encoder.{block}.mconv"
        if layer == "depthwise.conv":
            return f"{prefix}.{conv}.conv.{tensor}"
        if layer == "pointwise":
            return f"{prefix}.{pointwise}.conv.{tensor}"
        return f"{prefix}.{norm}.{tensor}"
    if match := RESIDUAL.fullmatch(name):
        block, source, layer, tensor = match.groups()
        inner = "conv." if layer == "0" else ""
        return f"encoder.encoder.{block}.res.{source}.{layer}.{inner}{tensor}"
    if match := SQUEEZE.fullmatch(name):
        block, layer = match.groups()
        index = _unit_layers(blocks[int(block)])[1]
        return f"encoder.encoder.{block}.mconv.{index}.fc.{layer}.weight"
    if match := CLASSIFIER.fullmatch(name):
        return f"decoder.decoder_layers.0.{match.group(1)}"
    raise AssertionError(f"no NeMo name for {name}")  # a tensor this map does not know: a bug


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def renamed_weights(
    archive: NemoArchive, module: torch.nn.Module, blocks: list[ConvBlockConfig]
) -> dict[str, torch.Tensor]:
    """`module`'s state dict taken from the archive (module may be on the meta device)."""
    return fitted_weights(
        archive,
        nemo_state_dict(archive),
        module,
        lambda ours: nemo_name(ours, blocks),
        lambda theirs: theirs in (FEATURIZER_WINDOW, FEATURIZER_FILTERBANK),
    )


def fitted_weights(
    archive: NemoArchive,
    state: Mapping[str, torch.Tensor],
    module: torch.nn.Module,
    nemo_name_of: Callable[[str], str],
    not_needed: Callable[[str], bool],
) -> dict[str, torch.Tensor]:
    """`module`'s state dict taken from `state` (the archive's, as NeMo names it) through
    `nemo_name_of`; every tensor of `state` is used or `not_needed` (training only), else
    refused with the missing, unused and mis-shaped names listed."""
    expected = module.state_dict()
    names = {ours: nemo_name_of(ours) for ours in expected}
    used = set(names.values())
    missing = sorted(n for n in names.values() if n not in state)
    unexpected = sorted(n for n in state if n not in used and not not_needed(n))
    misshaped = sorted(
        f"{theirs} ({list(state[theirs].shape)}, the network needs {list(expected[ours].shape)})"
        for ours, theirs in names.items()
        if theirs in state and state[theirs].shape != expected[ours].shape
    )
    problems = [
        f"{label}: {_listed(found)}"
        for label, found in (
            ("missing", missing),
            ("unused", unexpected),
            ("mis-shaped", misshaped),
        )
        if found
    ]
    if problems:
        raise UserError(
            f"{archive.label} {archive.path}: its weights do not fit the network its "
            f"model_config.yaml describes: " + "; ".join(problems)
        )
    return {ours: state[theirs] for ours, theirs in names.items()}


def featurizer_tensors(
    archive: NemoArchive, win_length: int, n_mels: int, bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeMo's window and mel filterbank as the archive stores them, shapes checked."""
    state = nemo_state_dict(archive)
    shapes = {FEATURIZER_WINDOW: [win_length], FEATURIZER_FILTERBANK: [1, n_mels, bins]}
    for name, shape in shapes.items():
        if name not in state:
            raise UserError(f"model.checkpoint {archive.path}: its weights hold no {name}")
        if list(state[name].shape) != shape:
            raise UserError(
                f"model.checkpoint {archive.path}: {name} is {list(state[name].shape)}, but "
                f"the preprocessor settings need {shape}"
            )
    return state[FEATURIZER_WINDOW], state[FEATURIZER_FILTERBANK]
