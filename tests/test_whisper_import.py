"""Whisper folders load into transformers' Whisper: the CTranslate2 tiny.en with its layout read
exactly and every tensor placed, a Hugging Face folder saved from it, and one clear line for
every folder or file that is not a Whisper model."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.whisper import load_whisper


def test_the_reader_reads_every_byte_of_the_layout(
    tiny_en, tiny_en_ctranslate2, write_ctranslate2, tmp_path
):
    model = tiny_en_ctranslate2
    assert (model.spec, model.revision, len(model.variables)) == ("WhisperSpec", 3, 148)
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert model.variables["decoder/embeddings/weight"].dtype == torch.float16
    assert int(model.variables["decoder/num_heads"]) == 6
    rewritten = tmp_path / "model.bin"
    write_ctranslate2(model, rewritten)
    assert rewritten.read_bytes() == (tiny_en / "model.bin").read_bytes()


def test_tiny_en_becomes_transformers_whisper(tiny_en_model, tiny_en_ctranslate2):
    model, tokenizer_json, facts = tiny_en_model
    config = model.config
    assert (config.encoder_layers, config.decoder_layers, config.d_model) == (4, 4, 384)
    assert (config.encoder_attention_heads, config.decoder_attention_heads) == (6, 6)
    assert (config.num_mel_bins, config.vocab_size, config.encoder_ffn_dim) == (80, 51864, 1536)
    assert (config.max_source_positions, config.max_target_positions) == (1500, 448)
    assert sum(p.numel() for p in model.parameters()) == 37_760_256
    assert tokenizer_json.name == "tokenizer.json"
    assert facts.prompt_ids == (50257, 50362) and facts.eos_token_id == 50256
    assert not facts.is_multilingual and facts.begin_suppress_tokens == (220, 50256)

    state = model.state_dict()
    ct2 = tiny_en_ctranslate2.variables
    assert (
        state["proj_out.weight"].data_ptr() == state["model.decoder.embed_tokens.weight"].data_ptr()
    )
    fused = ct2["decoder/layer_2/self_attention/linear_0/weight"].float()
    for index, part in enumerate("qkv"):
        torch.testing.assert_close(
            state[f"model.decoder.layers.2.self_attn.{part}_proj.weight"],
            fused[index * 384 : (index + 1) * 384],
            rtol=0,
            atol=0,
        )
    kv_bias = ct2["decoder/layer_3/attention/linear_1/bias"].float()
    torch.testing.assert_close(
        state["model.decoder.layers.3.encoder_attn.v_proj.bias"], kv_bias[384:], rtol=0, atol=0
    )
    torch.testing.assert_close(
        state["model.encoder.layers.1.final_layer_norm.weight"],
        ct2["encoder/layer_1/ffn/layer_norm/gamma"].float(),
        rtol=0,
        atol=0,
    )
    assert all(tensor.dtype == torch.float32 for tensor in state.values())


def test_a_hugging_face_folder_saved_from_it_loads_the_same(tiny_en, tiny_en_model, tmp_path):
    model, _, facts = tiny_en_model
    model.save_pretrained(tmp_path)
    shutil.copy(tiny_en / "tokenizer.json", tmp_path)
    again, tokenizer_json, facts_again = load_whisper(tmp_path)
    assert tokenizer_json == tmp_path / "tokenizer.json"
    assert facts_again == facts
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def _copy(tiny_en: Path, folder: Path, skip: str = "") -> Path:
    folder.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if name != skip:
            (folder / name).symlink_to(tiny_en / name)
    return folder


def _fails(path: Path, *fragments: str) -> str:
    with pytest.raises(UserError) as caught:
        load_whisper(path)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_folders_and_files_are_named(tiny_en, tmp_path):
    _fails(tmp_path / "nowhere", "no such Whisper model folder", "nowhere")
    (tmp_path / "notes.txt").write_text("hello\n")
    _fails(tmp_path / "notes.txt", "is a file, not a folder", "model.bin")
    (tmp_path / "empty").mkdir()
    _fails(tmp_path / "empty", "lacks config.json")
    _fails(_copy(tiny_en, tmp_path / "no_bin", skip="model.bin"), "holds no model.bin")
    _fails(_copy(tiny_en, tmp_path / "no_tok", skip="tokenizer.json"), "lacks tokenizer.json")


def test_damaged_files_are_named(tiny_en, tmp_path):
    truncated = _copy(tiny_en, tmp_path / "truncated", skip="model.bin")
    with (tiny_en / "model.bin").open("rb") as source:
        (truncated / "model.bin").write_bytes(source.read(50_000_000))
    _fails(truncated, "is truncated", "ends inside variable 'decoder/layer_", "50000000 bytes")

    text = _copy(tiny_en, tmp_path / "text", skip="model.bin")
    (text / "model.bin").write_text("this is not a model\n" * 10)
    _fails(text, "is not a CTranslate2 model.bin", "it is a text file")

    future = _copy(tiny_en, tmp_path / "future", skip="model.bin")
    (future / "model.bin").write_bytes((7).to_bytes(4, "little") + bytes(100))
    _fails(future, "binary version 7, not 6")

    bad_json = _copy(tiny_en, tmp_path / "bad_json", skip="config.json")
    (bad_json / "config.json").write_text("{not json")
    _fails(bad_json, "config.json is not readable JSON")


def test_tensors_that_do_not_fit_are_listed(
    tiny_en, tiny_en_ctranslate2, write_ctranslate2, tmp_path
):
    variables = dict(tiny_en_ctranslate2.variables)
    variables["decoder/extra/weight"] = torch.zeros(3, dtype=torch.float16)
    variables["decoder/layer_1/ffn/linear_0/weight"] = torch.zeros(1000, 384, dtype=torch.float16)
    del variables["encoder/layer_3/ffn/linear_1/bias"]
    folder = _copy(tiny_en, tmp_path / "misfit", skip="model.bin")
    write_ctranslate2(
        dataclasses.replace(tiny_en_ctranslate2, variables=variables), folder / "model.bin"
    )
    _fails(
        folder,
        "does not fit Whisper",
        "missing: encoder/layer_3/ffn/linear_1/bias",
        "unused: decoder/extra/weight",
        "mis-shaped: decoder/layer_1/ffn/linear_0/weight (file [1000, 384]",
    )


def test_a_foreign_hugging_face_folder_is_named(tiny_en, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    shutil.copy(tiny_en / "tokenizer.json", tmp_path)
    _fails(tmp_path, "model_type 'bert', not 'whisper'")


def test_settings_of_a_newer_converter_that_change_nothing_are_read_and_left(
    tiny_en, tiny_en_ctranslate2, tiny_en_model, write_ctranslate2, tmp_path
):
    """A newer converter writes ALiBi's details even with ALiBi off (the issue's
    'unused: decoder/alibi_use_positive_positions, decoder/scale_alibi'): the model loads as
    before; with ALiBi on, which Whisper lacks, the file is refused naming it."""
    variables = dict(tiny_en_ctranslate2.variables)
    variables["decoder/alibi_use_positive_positions"] = torch.tensor(0, dtype=torch.int8)
    variables["decoder/scale_alibi"] = torch.tensor(1, dtype=torch.int8)
    newer = _copy(tiny_en, tmp_path / "newer", skip="model.bin")
    write_ctranslate2(
        dataclasses.replace(tiny_en_ctranslate2, variables=variables), newer / "model.bin"
    )
    loaded = load_whisper(newer).model.state_dict()
    for name, tensor in tiny_en_model.model.state_dict().items():
        assert torch.equal(loaded[name], tensor), name

    variables["decoder/alibi"] = torch.tensor(1, dtype=torch.int8)
    alibi = _copy(tiny_en, tmp_path / "alibi", skip="model.bin")
    write_ctranslate2(
        dataclasses.replace(tiny_en_ctranslate2, variables=variables), alibi / "model.bin"
    )
    _fails(alibi, "is not a Whisper model transformers can run", "decoder/alibi = 1 (expected 0)")
