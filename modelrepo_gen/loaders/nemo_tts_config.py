"""A FastPitch or HiFi-GAN .nemo file's model_config.yaml read as this project's settings.

FastPitchModel -> the `fastpitch` network's settings, its text tokenizer -> the front-end's
symbol set; HifiGanModel -> the `hifigan` network's settings; both -> the mel each makes or
takes, which must be the same for the pair. Every setting of the sections read is carried into
the part, listed under `not_used_at_inference` (dropout: training only), or refused with one
line naming it and what is supported. A file of another class, or given in the other role, is
refused by name.
"""

from __future__ import annotations

import math
import string
from typing import Any

from omegaconf import OmegaConf

from modelrepo_gen.core.errors import UserError, first_line
from modelrepo_gen.loaders.nemo_archive import NemoArchive

ACOUSTIC, VOCODER = "FastPitchModel", "HifiGanModel"
ROLES = {"acoustic": ACOUSTIC, "vocoder": VOCODER}
WHAT = {ACOUSTIC: "an acoustic model (text -> mel)", VOCODER: "a vocoder (mel -> audio)"}
TOKENIZERS = ("EnglishCharsTokenizer", "IPATokenizer")
CHARS_KEYS = ("punct", "apostrophe", "add_blank_at", "pad_with_space", "non_default_punct_list")
IPA_KEYS = {  # setting -> the values built here (None: any)
    "punct": None,
    "non_default_punct_list": None,
    "locale_specific_punct": None,  # pt-BR only
    "space": None,
    "silence": None,
    "apostrophe": None,
    "oov": None,
    "sep": None,
    "add_blank_at": None,
    "pad_with_space": None,
    "locale": ("en-US",),
    "fixed_vocab": (None,),
}
G2P_KEYS = {
    "locale": ("en-US",),
    "apply_to_oov_word": (None,),
    "mapping_file": (None,),
    "grapheme_case": ("upper", "lower", "mixed"),
    "ignore_ambiguous_words": None,
    "use_chars": None,
    "phoneme_probability": None,  # NeMo speaks at probability 1 (parse's set_phone_prob)
    "use_stresses": None,
    "grapheme_prefix": None,
}
# NeMo's DEFAULT_PUNCTUATION (tokenizers/text_to_speech/ipa_lexicon.py)
DEFAULT_PUNCTUATION = (",", ".", "!", "?", "-", ":", ";", "/", '"', "(", ")", "[", "]", "{", "}")
PAD, BLANK, OOV = "<pad>", "<blank>", "<oov>"

TRANSFORMER = {
    "read": (
        "_target_",
        "n_layer",
        "n_head",
        "d_model",
        "d_head",
        "d_inner",
        "kernel_size",
        "d_embed",  # the encoder's embedding width: d_model here
        "n_embed",  # the encoder's symbol count and pad id: the tokenizer's
        "padding_idx",
    ),
    "fixed": {"pre_lnorm": (False,), "condition_types": ([],)},
    "training": ("dropout", "dropatt", "dropemb"),
}
PREDICTOR = {
    "read": ("_target_", "input_size", "kernel_size", "filter_size", "n_layers"),
    "fixed": {"condition_types": ([],)},
    "training": ("dropout",),
}
GENERATOR = {
    "read": (
        "_target_",
        "upsample_rates",
        "upsample_kernel_sizes",
        "upsample_initial_channel",
        "resblock_kernel_sizes",
        "resblock_dilation_sizes",
        "initial_input_size",
    ),
    "fixed": {"resblock": (1, "1")},
    "training": ("apply_weight_init_conv_pre",),
}
# Model settings that change what FastPitch computes at inference, and the values built here.
FASTPITCH_FIXED = {
    "learn_alignment": (True,),
    "n_speakers": (0, 1, None),
    "speaker_encoder": (None,),
    "speaker_emb_condition_prosody": (False, None),
    "speaker_emb_condition_decoder": (False, None),
    "speaker_emb_condition_aligner": (False, None),
}


def _refuse(archive: NemoArchive, setting: str, value: Any, supported: str) -> UserError:
    return UserError(
        f"{archive.label}: {archive.path.name} sets {setting}: {value!r}, which is not "
        f"supported (supported: {supported})"
    )


def _config(archive: NemoArchive) -> dict[str, Any]:
    """The config with NeMo's ${...} references resolved."""
    try:
        return OmegaConf.to_container(OmegaConf.create(archive.config), resolve=True)  # type: ignore[return-value]
    except Exception as error:  # OmegaConf raises several types for a reference it cannot follow
        raise UserError(
            f"{archive.label}: {archive.path.name}'s model_config.yaml cannot be resolved: "
            f"{first_line(error)}"
        ) from None


def model_class(archive: NemoArchive) -> str:
    return str(archive.config.get("target", "")).rsplit(".", 1)[-1]


def check_role(archive: NemoArchive, role: str) -> None:
    """The file must be the model class its role takes (FastPitch as acoustic, HiFi-GAN as
    vocoder)."""
    found, wanted = model_class(archive), ROLES[role]
    if found == wanted:
        return
    if found in WHAT:
        other = next(r for r, c in ROLES.items() if c == found)
        raise UserError(
            f"{archive.label}: {archive.path.name} is a {found}, {WHAT[found]}; "
            f"{archive.label} takes a {wanted}, {WHAT[wanted]} (is it meant as model.{other}?)"
        )
    raise UserError(
        f"{archive.label}: {archive.path.name} is a {found or 'model of no named class'}, which "
        f"is not supported as {role} (supported: {wanted})"
    )


def _section(archive: NemoArchive, config: dict, name: str, rules: dict, target: str) -> dict:
    """A section's settings, checked: unknown keys and unsupported values refused."""
    section = config.get(name)
    if not isinstance(section, dict):
        raise UserError(f"{archive.label}: {archive.path.name} has no {name} section")
    found = str(section.get("_target_", ""))
    if found.rsplit(".", 1)[-1] != target:
        raise _refuse(archive, f"{name}._target_", found, target)
    known = (*rules["read"], *rules["fixed"], *rules["training"])
    for key, value in section.items():
        if key not in known:
            raise _refuse(archive, f"{name}.{key}", value, f"the settings {', '.join(known)}")
        if key in rules["fixed"] and value not in rules["fixed"][key]:
            allowed = " or ".join(repr(v) for v in rules["fixed"][key])
            raise _refuse(archive, f"{name}.{key}", value, allowed)
    return section


def _training(section: dict, name: str, rules: dict) -> dict[str, Any]:
    return {f"{name}.{k}": section[k] for k in rules["training"] if k in section}


def _odd_kernel(archive: NemoArchive, where: str, value: Any) -> int:
    """One odd kernel size (NeMo may write a pair, one per convolution: both must agree)."""
    values = value if isinstance(value, list) else [value]
    if len(set(values)) != 1 or not isinstance(values[0], int) or values[0] % 2 == 0:
        raise _refuse(archive, where, value, "one odd kernel size for both convolutions")
    return values[0]


def mel_facts(archive: NemoArchive) -> dict[str, Any]:
    """The mel a FastPitch makes or a HiFi-GAN takes: what must match between the pair."""
    config = _config(archive)
    pre = config.get("preprocessor")
    if not isinstance(pre, dict):
        raise UserError(f"{archive.label}: {archive.path.name} has no preprocessor section")
    rate = int(pre.get("sample_rate", 16000))
    size = pre.get("n_window_size") or int(pre.get("window_size", 0.02) * rate)
    hop = pre.get("n_window_stride") or int(pre.get("window_stride", 0.01) * rate)
    if model_class(archive) == VOCODER:
        generator = config.get("generator") or {}
        bands = int(generator.get("initial_input_size", 80))
        hop_note = math.prod(generator.get("upsample_rates") or [hop])
        if hop_note != hop:
            raise UserError(
                f"{archive.label}: {archive.path.name}'s generator.upsample_rates make "
                f"{hop_note} samples per frame, but its preprocessor's hop is {hop}"
            )
    else:
        bands = int(config.get("n_mel_channels", pre.get("features", 64)))
    return {
        "sample rate": rate,
        "mel bands": bands,
        "hop length": int(hop),
        "window length": int(size),
        "FFT size": int(pre.get("n_fft") or 2 ** math.ceil(math.log2(size))),
        "lowest frequency": float(pre.get("lowfreq") or 0),
        "highest frequency": float(pre.get("highfreq") or rate / 2),
    }


def check_pair(acoustic: NemoArchive, vocoder: NemoArchive) -> None:
    """The vocoder must take the mel the acoustic model makes; refused by what differs."""
    made, taken = mel_facts(acoustic), mel_facts(vocoder)
    for fact, value in made.items():
        if taken[fact] != value:
            raise UserError(
                f"the pair does not match: {acoustic.label} {acoustic.path.name} makes mel with a "
                f"{fact} of {value:g}, but {vocoder.label} {vocoder.path.name} takes a {fact} "
                f"of {taken[fact]:g}"
            )


def fastpitch(archive: NemoArchive, n_symbols: int) -> dict[str, Any]:
    """Settings of the `fastpitch` component for a FastPitchModel .nemo (`n_symbols`: its
    tokenizer's token count, symbols()' tokens)."""
    config = _config(archive)
    for key, allowed in FASTPITCH_FIXED.items():
        value = config.get(key, None if key != "learn_alignment" else False)
        if value not in allowed:
            supported = " or ".join(repr(v) for v in allowed)
            if key == "learn_alignment":
                supported += " (a model with text_tokenizer; the older labels parser is not)"
            raise _refuse(archive, key, value, supported)
    unused: dict[str, Any] = {}
    d = int(config["symbols_embedding_dim"])
    settings: dict[str, Any] = {"symbols_embedding_dim": d}
    for name, prefix, kind in (
        ("input_fft", "in_fft", "FFTransformerEncoder"),
        ("output_fft", "out_fft", "FFTransformerDecoder"),
    ):
        section = _section(archive, config, name, TRANSFORMER, kind)
        for key in ("d_model", "d_embed"):
            if int(section.get(key) or d) != d:
                raise _refuse(archive, f"{name}.{key}", section[key], f"{d}, the embedding")
        settings |= {
            f"{prefix}_n_layers": int(section["n_layer"]),
            f"{prefix}_n_heads": int(section["n_head"]),
            f"{prefix}_d_head": int(section["d_head"]),
            f"{prefix}_conv1d_filter_size": int(section["d_inner"]),
            f"{prefix}_conv1d_kernel_size": _odd_kernel(
                archive, f"{name}.kernel_size", section["kernel_size"]
            ),
        }
        unused |= _training(section, name, TRANSFORMER)
    for name, prefix in (
        ("duration_predictor", "dur_predictor"),
        ("pitch_predictor", "pitch_predictor"),
        ("energy_predictor", "energy_predictor"),
    ):
        if name == "energy_predictor" and not config.get(name):
            settings["energy"] = False
            continue
        section = _section(archive, config, name, PREDICTOR, "TemporalPredictor")
        if int(section["input_size"]) != d:
            raise _refuse(archive, f"{name}.input_size", section["input_size"], f"{d}")
        settings |= {
            f"{prefix}_kernel_size": _odd_kernel(
                archive, f"{name}.kernel_size", section["kernel_size"]
            ),
            f"{prefix}_filter_size": int(section["filter_size"]),
            f"{prefix}_n_layers": int(section.get("n_layers", 2)),
        }
        unused |= _training(section, name, PREDICTOR)
    settings["pitch_embedding_kernel_size"] = _odd_kernel(
        archive, "pitch_embedding_kernel_size", config.get("pitch_embedding_kernel_size", 3)
    )
    if settings.get("energy", True):
        settings["energy"] = True
        settings["energy_embedding_kernel_size"] = _odd_kernel(
            archive, "energy_embedding_kernel_size", config.get("energy_embedding_kernel_size")
        )
    facts = mel_facts(archive)
    return {
        "name": archive.path.stem,
        "checkpoint": str(archive.path),
        "n_symbols": n_symbols,
        "n_mel": facts["mel bands"],
        "sample_rate": facts["sample rate"],
        "hop_length": facts["hop length"],
        "max_duration": int(config.get("max_token_duration", 75)),
        "min_duration": float(config.get("min_token_duration", 0)),
        **settings,
        "not_used_at_inference": unused,
    }


def hifigan(archive: NemoArchive) -> dict[str, Any]:
    """Settings of the `hifigan` component for a HifiGanModel .nemo."""
    config = _config(archive)
    generator = _section(archive, config, "generator", GENERATOR, "Generator")
    facts = mel_facts(archive)
    return {
        "name": archive.path.stem,
        "checkpoint": str(archive.path),
        "n_mel": facts["mel bands"],
        "sample_rate": facts["sample rate"],
        "hop_length": facts["hop length"],
        "upsample_initial_channel": int(generator["upsample_initial_channel"]),
        "upsample_rates": [int(r) for r in generator["upsample_rates"]],
        "upsample_kernel_sizes": [int(k) for k in generator["upsample_kernel_sizes"]],
        "resblock_kernel_sizes": [int(k) for k in generator["resblock_kernel_sizes"]],
        "resblock_dilation_sizes": [
            [int(d) for d in ds] for ds in generator["resblock_dilation_sizes"]
        ],
        "not_used_at_inference": _training(generator, "generator", GENERATOR),
    }


def _checked(archive: NemoArchive, section: dict, where: str, rules: dict) -> None:
    for key, value in section.items():
        if key not in rules:
            raise _refuse(archive, f"{where}.{key}", value, f"the settings {', '.join(rules)}")
        if rules[key] is not None and value not in rules[key]:
            raise _refuse(archive, f"{where}.{key}", value, " or ".join(map(repr, rules[key])))


def _tokenizer(archive: NemoArchive) -> tuple[str, dict[str, Any]]:
    """The tokenizer's class and settings, checked."""
    config = _config(archive)
    tokenizer = config.get("text_tokenizer")
    if not isinstance(tokenizer, dict):
        raise UserError(f"{archive.label}: {archive.path.name} has no text_tokenizer section")
    kind = str(tokenizer.get("_target_", "")).rsplit(".", 1)[-1]
    if kind not in TOKENIZERS:
        supported = ", ".join(TOKENIZERS)
        raise _refuse(archive, "text_tokenizer._target_", tokenizer.get("_target_"), supported)
    settings = {k: v for k, v in tokenizer.items() if k not in ("_target_", "g2p")}
    if kind == "EnglishCharsTokenizer":
        _checked(archive, settings, "text_tokenizer", dict.fromkeys(CHARS_KEYS))
        return kind, settings
    _checked(archive, settings, "text_tokenizer", IPA_KEYS)
    g2p = tokenizer.get("g2p")
    if not isinstance(g2p, dict) or str(g2p.get("_target_", "")).rsplit(".", 1)[-1] != "IpaG2p":
        found = g2p.get("_target_") if isinstance(g2p, dict) else g2p
        raise _refuse(archive, "text_tokenizer.g2p._target_", found, "IpaG2p")
    rules = {**G2P_KEYS, "_target_": None, "phoneme_dict": None, "heteronyms": None}
    _checked(archive, g2p, "text_tokenizer.g2p", rules)
    if not isinstance(g2p.get("phoneme_dict"), str):
        raise _refuse(archive, "text_tokenizer.g2p.phoneme_dict", g2p.get("phoneme_dict"), "a file")
    for key in ("phoneme_dict", "heteronyms"):
        if g2p.get(key):
            archive.member(str(g2p[key]), f"text_tokenizer.g2p.{key}")
    return kind, {**settings, "g2p": g2p}


def tokens(archive: NemoArchive) -> list[str]:
    """The tokenizer's tokens in id order, as NeMo's EnglishCharsTokenizer lists them: space,
    a-z, the apostrophe, the punctuation, then pad, blank and out-of-vocabulary (an IPA
    tokenizer's come from its dictionary: config/nemo_tts_resolver.py)."""
    kind, tokenizer = _tokenizer(archive)
    if kind != "EnglishCharsTokenizer":
        raise AssertionError("an IPA tokenizer's tokens are read from its dictionary")
    listed = [" ", *string.ascii_lowercase]
    if tokenizer.get("apostrophe", True):
        listed.append("'")
    if tokenizer.get("punct", True):
        listed += list(tokenizer.get("non_default_punct_list") or DEFAULT_PUNCTUATION)
    listed.append(PAD)
    blank_at = tokenizer.get("add_blank_at")
    if blank_at is not None:  # as NeMo: any value but null adds it
        listed.append(BLANK)
    listed.append(OOV)
    if blank_at == "last":
        listed[-1], listed[-2] = listed[-2], listed[-1]
    return listed


def symbols(archive: NemoArchive) -> dict[str, Any]:
    """The front-end's symbol set (conf/tts_symbols/ shape) for the file's tokenizer; an IPA
    tokenizer's without its `tokens` (they come from its dictionary)."""
    kind, tokenizer = _tokenizer(archive)
    if kind == "IPATokenizer":
        g2p = tokenizer.pop("g2p")
        return {
            "encoding": "nemo_ipa",
            "checkpoint": str(archive.path),
            "dictionary": str(g2p["phoneme_dict"]),
            "heteronyms": str(g2p["heteronyms"]) if g2p.get("heteronyms") else None,
            "tokenizer": tokenizer,
            "g2p": {k: v for k, v in g2p.items() if k in G2P_KEYS},
        }
    punctuation = tokenizer.get("non_default_punct_list") or DEFAULT_PUNCTUATION
    return {
        "encoding": "nemo_characters",
        "tokens": tokens(archive),
        "punctuation": list(punctuation) if tokenizer.get("punct", True) else [],
        "pad_with_space": bool(tokenizer.get("pad_with_space", False)),
    }
