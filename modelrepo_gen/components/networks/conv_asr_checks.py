"""Checks of a Jasper / QuartzNet config, so a bad block stops before any work, saying why."""

from __future__ import annotations

import torch

from modelrepo_gen.components.networks.conv_asr import ConvASR, ConvASRConfig, ConvBlockConfig
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.validation import check_number, require

# One exported file holds the whole network (ONNX is a single protobuf, 2 GiB at most).
MAX_PARAMETERS = 2**31 // 4


def _changes_length(block: ConvBlockConfig) -> bool:
    # 'Same' padding is dilation * (kernel - 1) // 2 per side: an odd span loses a frame.
    return block.stride > 1 or (block.dilation * (block.kernel - 1)) % 2 == 1


def _check_strided_residual(block: ConvBlockConfig, label: str) -> None:
    """A strided residual (1x1, stride S) matches a main path that strides once by S."""
    strided_units = 1 if block.stride_last else block.repeat
    require(
        block.residual and (block.stride == 1 or strided_units == 1),
        f"{label}.residual_stride needs a residual block whose convolutions stride once "
        f"(stride_last, or repeat 1); got repeat {block.repeat}, stride {block.stride}",
    )
    require(
        block.dilation * (block.kernel - 1) % 2 == 0,
        f"{label} is residual, so its kernel must keep the frames aligned (an even dilation * "
        f"(kernel - 1)); got kernel {block.kernel}, dilation {block.dilation}",
    )


def check_conv_asr(config: ConvASRConfig, num_classes: int, where: str = "model") -> None:
    """Raise UserError naming the first setting that cannot make a working network."""
    check_number(f"{where}.feat_in", config.feat_in, at_least=1)
    require(len(config.blocks) > 0, f"{where}.blocks must list at least one block, got none")
    for i, block in enumerate(config.blocks):
        label = f"{where}.blocks.{i}"
        for key in ("filters", "kernel", "repeat", "stride", "dilation", "times"):
            check_number(f"{label}.{key}", getattr(block, key), at_least=1)
        if block.residual_stride:
            _check_strided_residual(block, label)
        else:
            require(
                not (block.residual and _changes_length(block)),
                f"{label} is residual, so it must keep the time length (stride 1 and an even "
                f"dilation * (kernel - 1)); got stride {block.stride}, kernel {block.kernel}, "
                f"dilation {block.dilation}",
            )
        check_number(f"{label}.se_reduction_ratio", block.se_reduction_ratio, at_least=1)
        require(
            not block.se or block.filters // block.se_reduction_ratio >= 1,
            f"{label}.se_reduction_ratio ({block.se_reduction_ratio}) leaves no hidden units "
            f"for {block.filters} filters",
        )
    _check_dense_residual_lengths(config, where)
    _check_size(config, num_classes, where)


def _check_dense_residual_lengths(config: ConvASRConfig, where: str) -> None:
    """With dense residuals a block adds every earlier output: they must all share a length."""
    if not config.dense_residual:
        return
    changed_at: int | None = None  # config index of a length change after the first output
    outputs = 0
    for i, block in enumerate(config.blocks):
        for _ in range(block.times):
            if block.residual and changed_at is not None:
                raise UserError(
                    f"{where}.blocks.{changed_at} changes the time length (stride or kernel), "
                    f"but the later residual block {where}.blocks.{i} adds every earlier "
                    "block's output (dense_residual), which would then differ in length; keep "
                    "the length there (stride 1, odd kernel) or change it only in the first block"
                )
            if _changes_length(block) and outputs > 0:
                changed_at = i
            outputs += 1


def _check_size(config: ConvASRConfig, num_classes: int, where: str) -> None:
    # Built on the meta device: shapes only, no memory, no initialisation cost.
    with torch.device("meta"):
        parameters = sum(p.numel() for p in ConvASR(config, num_classes).parameters())
    require(
        parameters <= MAX_PARAMETERS,
        f"{where}.blocks make a network of {parameters:,} parameters; at most "
        f"{MAX_PARAMETERS:,} (2 GiB in fp32, what one exported file holds) are supported",
    )
