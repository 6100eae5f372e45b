"""Imports a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json) into
transformers' WhisperForConditionalGeneration.

The architecture comes from the tensors' shapes; every tensor must find its place and fit it,
and the file's settings must describe the Whisper architecture transformers implements.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.ctranslate2_format import CTranslate2Model, read_ctranslate2
from modelrepo_gen.loaders.whisper_generation import WhisperGenerationFacts, generation_facts

SPEC = "WhisperSpec"
SHOWN = 6
# Scalar settings in the file and the values transformers' Whisper implements.
SETTINGS = {
    "decoder/activation": 3,  # GELU
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
# Settings that act only while another is on (newer converters write them whatever it is):
# with that one at the value above they change nothing, so they are read and left.
ONLY_WITH = {
    "decoder/alibi_use_positive_positions": "decoder/alibi",
    "decoder/scale_alibi": "decoder/alibi",
}
# Used by CTranslate2 for word timestamps only; no weights.
ALIGNMENT = ("decoder/alignment_heads", "decoder/alignment_layer")
NORM = {"gamma": "weight", "beta": "bias"}
PARAMS = ("weight", "bias")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (
        f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    )


def _layers(variables: dict[str, torch.Tensor], stack: str) -> int:
    found = {int(m.group(1)) for n in variables if (m := re.match(rf"{stack}/layer_(\d+)/", n))}
    return max(found) + 1 if found else 0


def _shape(model: CTranslate2Model, name: str, path: Path) -> list[int]:
    if name not in model.variables:
        raise UserError(f"{path} is not a Whisper model: it has no variable {name}")
    return list(model.variables[name].shape)


def whisper_config(model: CTranslate2Model, path: Path, tokens: dict[str, int]) -> WhisperConfig:
    """The transformers config whose tensors have the shapes found in the file."""
    vocab, d_model = _shape(model, "decoder/embeddings/weight", path)
    return WhisperConfig(
        vocab_size=vocab,
        d_model=d_model,
        num_mel_bins=_shape(model, "encoder/conv1/weight", path)[1],
        encoder_layers=_layers(model.variables, "encoder"),
        decoder_layers=_layers(model.variables, "decoder"),
        encoder_attention_heads=int(model.variables.get("encoder/num_heads", torch.tensor(0))),
        decoder_attention_heads=int(model.variables.get("decoder/num_heads", torch.tensor(0))),
        encoder_ffn_dim=_shape(model, "encoder/layer_0/ffn/linear_0/weight", path)[0],
        decoder_ffn_dim=_shape(model, "decoder/layer_0/ffn/linear_0/weight", path)[0],
        max_source_positions=_shape(model, "encoder/position_encodings/encodings", path)[0],
        max_target_positions=_shape(model, "decoder/position_encodings/encodings", path)[0],
        **tokens,
    )


def _attention(src: str, dst: str, fused: str, d_model: int) -> list[tuple[str, str, slice]]:
    """(file name, model name, rows) for one attention block; `fused` names its packed parts."""
    parts = {"qkv": ("q", "k", "v"), "kv": ("k", "v")}[fused]
    pieces = []
    first = 0 if fused == "qkv" else 1  # cross-attention keeps q in linear_0
    if fused == "kv":
        pieces += [(f"{src}/linear_0/{p}", f"{dst}.q_proj.{p}", slice(None)) for p in PARAMS]
    for index, part in enumerate(parts):
        rows = slice(index * d_model, (index + 1) * d_model)
        for param in PARAMS:
            pieces.append((f"{src}/linear_{first}/{param}", f"{dst}.{part}_proj.{param}", rows))
    out = f"{src}/linear_{first + 1}"
    pieces += [(f"{out}/{p}", f"{dst}.out_proj.{p}", slice(None)) for p in PARAMS]
    pieces += [
        (f"{src}/layer_norm/{a}", f"{dst}_layer_norm.{b}", slice(None)) for a, b in NORM.items()
    ]
    return pieces


def _plan(config: WhisperConfig) -> list[tuple[str, str, slice]]:
    """Where every file variable goes: (file name, model name, rows of the file tensor)."""
    d = config.d_model
    whole = slice(None)
    plan = [
        ("decoder/embeddings/weight", "model.decoder.embed_tokens.weight", whole),
        ("decoder/embeddings/weight", "proj_out.weight", whole),  # tied output projection
        ("decoder/position_encodings/encodings", "model.decoder.embed_positions.weight", whole),
        ("encoder/position_encodings/encodings", "model.encoder.embed_positions.weight", whole),
    ]
    for conv in ("conv1", "conv2"):
        plan += [(f"encoder/{conv}/{p}", f"model.encoder.{conv}.{p}", whole) for p in PARAMS]
    for stack, count in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        plan += [
            (f"{stack}/layer_norm/{a}", f"model.{stack}.layer_norm.{b}", whole)
            for a, b in NORM.items()
        ]
        for i in range(count):
            src, dst = f"{stack}/layer_{i}", f"model.{stack}.layers.{i}"
            plan += _attention(f"{src}/self_attention", f"{dst}.self_attn", "qkv", d)
            if stack == "decoder":
                plan += _attention(f"{src}/attention", f"{dst}.encoder_attn", "kv", d)
            for fc, linear in (("fc1", "linear_0"), ("fc2", "linear_1")):
                plan += [(f"{src}/ffn/{linear}/{p}", f"{dst}.{fc}.{p}", whole) for p in PARAMS]
            plan += [
                (f"{src}/ffn/layer_norm/{a}", f"{dst}.final_layer_norm.{b}", whole)
                for a, b in NORM.items()
            ]
    return plan


def _check_settings(model: CTranslate2Model, path: Path) -> None:
    wrong = [
        f"{name} = {int(model.variables[name])} (expected {value})"
        for name, value in SETTINGS.items()
        if name in model.variables and int(model.variables[name]) != value
    ]
    if model.spec != SPEC:
        wrong.insert(0, f"spec {model.spec} (expected {SPEC})")
    if wrong:
        raise UserError(f"{path} is not a Whisper model transformers can run: {'; '.join(wrong)}")
    quantized = sorted(n for n, t in model.variables.items() if n.endswith("/weight_scale"))
    if quantized or any(t.dtype == torch.int8 and t.dim() > 0 for t in model.variables.values()):
        raise UserError(
            f"{path} holds int8-quantized weights; convert the model again with "
            "--quantization float16 (or float32)"
        )


def _state_dict(
    model: CTranslate2Model, config: WhisperConfig, expected: dict[str, torch.Tensor], path: Path
) -> dict[str, torch.Tensor]:
    """The model's state dict from the file, or UserError naming what does not fit."""
    state: dict[str, torch.Tensor] = {}
    used = set(SETTINGS) | set(ALIGNMENT) | {"encoder/num_heads", "decoder/num_heads"}
    used |= set(ONLY_WITH)  # _check_settings made sure what they depend on is off
    used |= set(model.aliases)  # aliases share their target's tensor
    absent, misshaped, nonzero = set(), [], []
    for source, target, rows in _plan(config):
        if source not in model.variables:
            absent.add(source)
            continue
        used.add(source)
        tensor = model.variables[source][rows].float()
        if target not in expected:
            # Whisper's key projection has no bias: the file's must be zero to drop it.
            if target.endswith("k_proj.bias") and torch.count_nonzero(tensor) == 0:
                continue
            nonzero.append(f"{source} (rows {rows.start}:{rows.stop})")
        elif tensor.shape != expected[target].shape:
            misshaped.append(
                f"{source} (file {list(tensor.shape)}, {target} {list(expected[target].shape)})"
            )
        else:
            state[target] = tensor
    unused = sorted(set(model.variables) - used)
    problems = [
        f"{label}: {_listed(sorted(names))}"
        for label, names in (
            ("missing", absent),
            ("unused", unused),
            ("mis-shaped", misshaped),
            ("non-zero key bias Whisper cannot hold", nonzero),
        )
        if names
    ]
    if problems:
        raise UserError(f"{path} does not fit Whisper: " + "; ".join(problems))
    return state


def import_ctranslate2_whisper(
    folder: Path,
) -> tuple[WhisperForConditionalGeneration, WhisperGenerationFacts]:
    """The fp32 transformers model and its generation facts from a CTranslate2 folder."""
    model_bin = folder / "model.bin"
    options = json.loads((folder / "config.json").read_text(encoding="utf-8") or "null")
    if not isinstance(options, dict):
        raise UserError(f"{folder / 'config.json'} is not a JSON object")
    ct2 = read_ctranslate2(model_bin)
    _check_settings(ct2, model_bin)
    vocab = _shape(ct2, "decoder/embeddings/weight", model_bin)[0]
    max_target = _shape(ct2, "decoder/position_encodings/encodings", model_bin)[0]
    facts = generation_facts(
        folder / "tokenizer.json",
        vocab,
        max_target,
        options.get("suppress_ids", []),
        options.get("suppress_ids_begin", []),
    )
    tokens = {
        "decoder_start_token_id": facts.decoder_start_token_id,
        "bos_token_id": facts.eos_token_id,
        "eos_token_id": facts.eos_token_id,
        "pad_token_id": facts.eos_token_id,
    }
    config = whisper_config(ct2, model_bin, tokens)
    if not config.encoder_attention_heads or not config.decoder_attention_heads:
        raise UserError(f"{model_bin} does not say its attention heads (encoder/num_heads)")
    with torch.device("meta"):
        skeleton = WhisperForConditionalGeneration(config)
    state = _state_dict(ct2, config, skeleton.state_dict(), model_bin)
    model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True)
    model.generation_config = facts.generation_config()
    return model.eval(), facts
