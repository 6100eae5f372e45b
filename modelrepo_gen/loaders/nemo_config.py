"""A .nemo file's model_config.yaml read as this project's settings, or refused by name.

Three parts: the featurizer (NeMo's AudioToMelSpectrogramPreprocessor), the acoustic model
(ConvASREncoder + ConvASRDecoder) and the decoder (the characters of the config, or the
SentencePiece tokenizer of a BPE model). Every setting of those sections is either carried
into the part, listed under `not_used_at_inference` (dropout, dither: training only), or
refused with one line naming it and what is supported. Nothing is silently ignored.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.nemo_archive import NemoArchive

PREPROCESSOR = "AudioToMelSpectrogramPreprocessor"
ENCODER = "ConvASREncoder"
DECODER = "ConvASRDecoder"
MODELS = {"EncDecCTCModel": "characters", "EncDecCTCModelBPE": "bpe"}
WINDOWS = ("hann", "hamming", "blackman", "bartlett")
GREEDY = ("greedy", "greedy_batch")

# setting -> the values this project implements (None: any value).
PREPROCESSOR_FIXED = {"frame_splicing": (1,), "exact_pad": (False,)}
PREPROCESSOR_TRAINING = (
    "dither",
    "nb_augmentation_prob",
    "nb_max_freq",
    "rng",
    "use_grads",
    # Deprecated; NeMo forces them off whatever the config says.
    "use_torchaudio",
    "stft_exact_pad",
    "stft_conv",
)
PREPROCESSOR_READ = (
    "_target_",
    "sample_rate",
    "window_size",
    "window_stride",
    "n_window_size",
    "n_window_stride",
    "window",
    "normalize",
    "n_fft",
    "preemph",
    "features",
    "lowfreq",
    "highfreq",
    "log",
    "log_zero_guard_type",
    "log_zero_guard_value",
    "pad_to",
    "pad_value",
    "mag_power",
    "mel_norm",
)
ENCODER_FIXED = {
    "activation": ("relu",),
    "normalization_mode": ("batch",),
    "conv_mask": (True,),
    "frame_splicing": (1,),
    "quantize": (False,),
}
ENCODER_TRAINING = ("init_mode", "norm_groups")  # norm_groups: group norm only
BLOCK_FIXED = {
    "groups": (1,),
    "heads": (-1,),
    "future_context": (-1,),
    "residual_mode": ("add", "stride_add"),
    "padding": ("same",),
}
# se_context_size: NeMo 3.0 averages every valid frame at inference, whatever the size.
BLOCK_TRAINING = ("dropout", "se_context_size", "se_interpolation_mode")
BLOCK_READ = (
    "filters",
    "repeat",
    "kernel",
    "stride",
    "dilation",
    "residual",
    "separable",
    "residual_dense",
    "se",
    "se_reduction_ratio",
    "kernel_size_factor",
    "stride_last",
    "residual_mode",
)
DECODER_READ = ("_target_", "feat_in", "num_classes", "vocabulary", "add_blank")
DECODER_TRAINING = ("init_mode",)


def _refuse(archive: NemoArchive, setting: str, value: Any, supported: str) -> UserError:
    return UserError(
        f"model.checkpoint: {archive.path.name} sets {setting}: {value!r}, which is not "
        f"supported (supported: {supported})"
    )


def _check_keys(
    archive: NemoArchive,
    section: dict,
    where: str,
    read: tuple[str, ...],
    fixed: dict[str, tuple],
    training: tuple[str, ...],
) -> dict[str, Any]:
    """Refuse unknown settings and unsupported values; return the training-only ones."""
    known = (*read, *fixed, *training)
    for key, value in section.items():
        if key not in known:
            raise _refuse(archive, f"{where}.{key}", value, f"the settings {', '.join(known)}")
        if key in fixed and value not in fixed[key]:
            allowed = " or ".join(repr(v) for v in fixed[key])
            raise _refuse(archive, f"{where}.{key}", value, allowed)
    return {key: section[key] for key in training if key in section}


def _section(archive: NemoArchive, name: str, target: str) -> dict:
    section = archive.config.get(name)
    if not isinstance(section, dict):
        raise UserError(f"model.checkpoint: {archive.path.name} has no {name} section")
    found = str(section.get("_target_", ""))
    if found.rsplit(".", 1)[-1] != target:
        raise _refuse(archive, f"{name}._target_", found, target)
    return section


def _single(archive: NemoArchive, where: str, value: Any) -> int:
    """NeMo writes kernel, stride and dilation as one-item lists."""
    values = value if isinstance(value, list) else [value]
    if len(values) != 1:
        raise _refuse(archive, where, value, "one value")
    return int(values[0])


def model_kind(archive: NemoArchive) -> str:
    """'characters' or 'bpe', from the model class the config names."""
    target = str(archive.config.get("target", ""))
    kind = MODELS.get(target.rsplit(".", 1)[-1])
    if kind is None:
        raise _refuse(archive, "target", target, ", ".join(MODELS))
    strategy = (archive.config.get("decoding") or {}).get("strategy", "greedy_batch")
    if strategy not in GREEDY:
        raise _refuse(archive, "decoding.strategy", strategy, " or ".join(GREEDY))
    return kind


def sample_rate(archive: NemoArchive) -> int:
    return int(_section(archive, "preprocessor", PREPROCESSOR).get("sample_rate", 16000))


def _guard_value(archive: NemoArchive, value: Any) -> float:
    if isinstance(value, str):
        if value in ("tiny", "eps"):
            return float(getattr(np.finfo(np.float32), value))
        raise _refuse(archive, "preprocessor.log_zero_guard_value", value, "a number, tiny or eps")
    return float(value)


def featurizer(archive: NemoArchive) -> dict[str, Any]:
    pre = _section(archive, "preprocessor", PREPROCESSOR)
    unused = _check_keys(
        archive, pre, "preprocessor", PREPROCESSOR_READ, PREPROCESSOR_FIXED, PREPROCESSOR_TRAINING
    )
    rate = int(pre.get("sample_rate", 16000))
    # As AudioToMelSpectrogramPreprocessor: seconds become samples by truncation.
    size = pre.get("n_window_size") or int(pre.get("window_size", 0.02) * rate)
    stride = pre.get("n_window_stride") or int(pre.get("window_stride", 0.01) * rate)
    window = pre.get("window", "hann")
    if window not in WINDOWS:
        raise _refuse(archive, "preprocessor.window", window, ", ".join(WINDOWS))
    normalize = pre.get("normalize", "per_feature")
    if isinstance(normalize, dict):
        raise _refuse(archive, "preprocessor.normalize", normalize, "per_feature, all_features, NA")
    if normalize not in ("per_feature", "all_features"):
        normalize = "none"  # NeMo leaves the features as they are for any other value
    guard_type = pre.get("log_zero_guard_type", "add")
    if guard_type not in ("add", "clamp"):
        raise _refuse(archive, "preprocessor.log_zero_guard_type", guard_type, "add or clamp")
    mel_norm = pre.get("mel_norm", "slaney")
    if mel_norm not in ("slaney", None):
        raise _refuse(archive, "preprocessor.mel_norm", mel_norm, "slaney or null")
    pad_to = pre.get("pad_to", 16)
    if not isinstance(pad_to, int):
        raise _refuse(archive, "preprocessor.pad_to", pad_to, "a whole number of frames")
    return {
        "sample_rate": rate,
        "n_window_size": int(size),
        "n_window_stride": int(stride),
        "window": window,
        "n_fft": int(pre.get("n_fft") or 2 ** math.ceil(math.log2(size))),
        "features": int(pre.get("features", 64)),
        "preemph": None if pre.get("preemph", 0.97) is None else float(pre.get("preemph", 0.97)),
        "lowfreq": float(pre.get("lowfreq", 0)),
        "highfreq": float(pre.get("highfreq") or rate / 2),
        "log": bool(pre.get("log", True)),
        "log_zero_guard_type": guard_type,
        "log_zero_guard_value": _guard_value(archive, pre.get("log_zero_guard_value", 2**-24)),
        "mag_power": float(pre.get("mag_power", 2.0)),
        "normalize": normalize,
        "pad_to": int(pad_to),
        "pad_value": float(pre.get("pad_value", 0.0)),
        "mel_norm": mel_norm,
        "not_used_at_inference": unused,
    }


def _kernel(archive: NemoArchive, where: str, block: dict) -> int:
    kernel = _single(archive, f"{where}.kernel", block.get("kernel", 11))
    factor = float(block.get("kernel_size_factor", 1.0))
    if factor != 1.0:  # as NeMo's compute_new_kernel_size: scaled, at least 1, made odd
        kernel = max(int(kernel * factor), 1)
        kernel += 1 - kernel % 2
    return kernel


def _blocks(archive: NemoArchive, encoder: dict) -> tuple[list[dict], bool, dict]:
    jasper = encoder.get("jasper")
    if not isinstance(jasper, list) or not jasper:
        raise UserError(f"model.checkpoint: {archive.path.name} has no encoder.jasper blocks")
    default_mode = encoder.get("residual_mode", "add")
    blocks, unused = [], {}
    dense = [bool(b.get("residual_dense", False)) for b in jasper]
    for i, block in enumerate(jasper):
        where = f"encoder.jasper.{i}"
        found = _check_keys(archive, block, where, BLOCK_READ, BLOCK_FIXED, BLOCK_TRAINING)
        unused.update({f"{where}.{k}": v for k, v in found.items()})
        stride = _single(archive, f"{where}.stride", block.get("stride", 1))
        dilation = _single(archive, f"{where}.dilation", block.get("dilation", 1))
        if stride > 1 and dilation > 1:
            raise _refuse(archive, f"{where}.dilation", dilation, "1 where the stride is above 1")
        residual = bool(block.get("residual", True))
        mode = block.get("residual_mode", default_mode)
        if mode not in BLOCK_FIXED["residual_mode"]:
            raise _refuse(archive, f"{where}.residual_mode", mode, "add or stride_add")
        blocks.append(
            {
                "filters": int(block["filters"]),
                "kernel": _kernel(archive, where, block),
                "repeat": int(block.get("repeat", 3)),
                "stride": stride,
                "dilation": dilation,
                "residual": residual,
                "separable": bool(block.get("separable", False)),
                "se": bool(block.get("se", False)),
                "se_reduction_ratio": int(block.get("se_reduction_ratio", 8)),
                "stride_last": bool(block.get("stride_last", False)),
                "residual_stride": residual and mode == "stride_add",
            }
        )
    if any(dense):
        # This project's dense residuals feed every block after the first from all earlier
        # blocks' outputs: NeMo's pattern when blocks 1..N are residual_dense.
        residual = [i for i, b in enumerate(blocks) if b["residual"]]
        expected = list(range(1, len(residual) + 1))
        if residual != expected or [i for i, d in enumerate(dense) if d] != expected:
            where = next(i for i, d in enumerate(dense) if d)
            raise _refuse(
                archive,
                f"encoder.jasper.{where}.residual_dense",
                True,
                "dense residuals on every residual block, which must be blocks 1..N in a row",
            )
    return blocks, any(dense), unused


def acoustic_model(archive: NemoArchive) -> dict[str, Any]:
    encoder = _section(archive, "encoder", ENCODER)
    unused = _check_keys(
        archive,
        {k: v for k, v in encoder.items() if k not in ("jasper", "residual_mode")},
        "encoder",
        ("_target_", "feat_in"),
        ENCODER_FIXED,
        ENCODER_TRAINING,
    )
    unused = {f"encoder.{k}": v for k, v in unused.items()}
    blocks, dense, unused_blocks = _blocks(archive, encoder)
    unused.update(unused_blocks)
    decoder = _section(archive, "decoder", DECODER)
    unused.update(
        {
            f"decoder.{k}": v
            for k, v in _check_keys(
                archive, decoder, "decoder", DECODER_READ, {"add_blank": (True,)}, DECODER_TRAINING
            ).items()
        }
    )
    if int(decoder.get("feat_in", -1)) != blocks[-1]["filters"]:
        raise UserError(
            f"model.checkpoint: {archive.path.name} sets decoder.feat_in: "
            f"{decoder.get('feat_in')}, but the encoder's last block gives "
            f"{blocks[-1]['filters']} channels"
        )
    return {
        "name": archive.path.stem,
        "checkpoint": str(archive.path),
        "feat_in": int(encoder.get("feat_in", 64)),
        "num_classes": output_classes(archive) + 1,  # the CTC blank comes last
        "dense_residual": dense,
        "blocks": blocks,
        "not_used_at_inference": unused,
    }


def output_classes(archive: NemoArchive) -> int:
    """Vocabulary entries (without the blank), as ConvASRDecoder counts them."""
    decoder = _section(archive, "decoder", DECODER)
    vocabulary = decoder.get("vocabulary") or []
    classes = int(decoder.get("num_classes", -1))
    return classes if classes > 0 else len(vocabulary)


def vocabulary(archive: NemoArchive) -> list[str]:
    decoder = _section(archive, "decoder", DECODER)
    symbols = [str(s) for s in decoder.get("vocabulary") or []]
    if len(symbols) != output_classes(archive):
        raise UserError(
            f"model.checkpoint: {archive.path.name} sets decoder.num_classes: "
            f"{output_classes(archive)}, but decoder.vocabulary lists {len(symbols)} symbols"
        )
    return symbols


def tokenizer_reference(archive: NemoArchive) -> str:
    """The `nemo:<file>` of a BPE model's SentencePiece model, checked to be in the archive."""
    tokenizer = archive.config.get("tokenizer")
    if not isinstance(tokenizer, dict):
        raise UserError(f"model.checkpoint: {archive.path.name} is a BPE model without a tokenizer")
    if tokenizer.get("type", "bpe") != "bpe":
        raise _refuse(archive, "tokenizer.type", tokenizer.get("type"), "bpe (SentencePiece)")
    reference = tokenizer.get("model_path")
    if not isinstance(reference, str) or not reference:
        raise UserError(
            f"model.checkpoint: {archive.path.name} names no tokenizer.model_path (SentencePiece)"
        )
    archive.member(reference, "tokenizer.model_path")
    return reference
