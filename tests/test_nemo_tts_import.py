"""pipeline=tts_nemo reads a FastPitch and a HiFi-GAN .nemo as NeMo does, or refuses them in one
line.

The fixtures (tests/fixtures/nemo/make_tts_fixtures.py, NeMo 3.0, random weights) come with
what NeMo itself computes for four texts: the tokens of FastPitch's parse, its mel and
HiFi-GAN's audio. Here: the front-end gives NeMo's tokens, the networks built from the files
give NeMo's mel and audio (within 1e-4 of the largest value), and every bad pair or file stops
the build with one line naming it. Served parity is in test_served_tts_pipelines.py.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.cli_runs import run_cli
from helpers.nemo_archives import nemo_members, pack_nemo, with_changed_config
from helpers.nemo_fixtures import FIXTURES
from helpers.pickled_code import RunsCode
from helpers.project import compose_config

from modelrepo_gen.components.triton_python.symbol_encoding import SymbolEncoder
from modelrepo_gen.components.triton_python.tts_text_frontend import encode_text
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve

FASTPITCH = FIXTURES / "fastpitch_chars.nemo"
FASTPITCH_IPA = FIXTURES / "fastpitch_ipa.nemo"  # IPATokenizer + IpaG2p, its own small dictionary
IPA_REFERENCE = json.loads((FIXTURES / "tts_ipa.reference.json").read_text(encoding="utf-8"))
HIFIGAN = FIXTURES / "hifigan_small.nemo"
QUARTZNET = FIXTURES / "quartznet_like.nemo"
REFERENCE = json.loads((FIXTURES / "tts.reference.json").read_text(encoding="utf-8"))
ARRAYS = np.load(FIXTURES / "tts.reference.npz")
TOLERANCE = 1e-4  # relative: max |ours - NeMo| / max |NeMo|


def overrides(acoustic: Path = FASTPITCH, vocoder: Path = HIFIGAN, *extra: str) -> list[str]:
    return ["pipeline=tts_nemo", f"model.acoustic={acoustic}", f"model.vocoder={vocoder}", *extra]


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


@pytest.fixture(scope="module")
def plan():
    return resolve(compose_config(overrides()))


def unit(plan, role: str):
    return next(u for u in plan.units if u.role == role)


def test_the_front_end_gives_nemos_tokens(plan) -> None:
    frontend = unit(plan, "frontend").parameters
    symbols = json.loads(frontend["symbols"])
    assert symbols["tokens"] == REFERENCE["tokens"]
    encoder = SymbolEncoder(symbols)
    rules = json.loads(frontend["rules"])
    limits = int(frontend["max_sentence_symbols"]), int(frontend["max_symbols"])
    for i, text in enumerate(REFERENCE["texts"]):
        nemo = ARRAYS[f"tokens_{i}"].tolist()
        assert encoder.encode(text) == nemo, text  # accents, quotes, dashes as NeMo reads them
        if len(encoder.sentences(text)) == 1 and "\u201c" not in text:
            # The served path: the project's English normalization changes nothing here.
            assert encode_text(text, rules, encoder, *limits) == [nemo]


def test_an_ipa_tokenizer_gives_nemos_tokens(tmp_path: Path) -> None:
    """The vocabulary built from the dictionary in the file, and every text's ids, as NeMo's
    IPATokenizer + IpaG2p: dictionary words (ambiguous ones: first pronunciation), 's and s
    suffixes, a heteronym and unknown words spelled as letters, a hyphenated unknown word looked
    up part by part, |unchanged| spans; served through the built front-end as well."""
    from modelrepo_gen.assembly.run import build_repository
    from modelrepo_gen.clients.in_process_repository import InProcessRepository

    repository = tmp_path / "repo"
    build_repository(compose_config(overrides(FASTPITCH_IPA)), repository)
    folder = repository / "tts_nemo_frontend" / "1"
    plan = resolve(compose_config(overrides(FASTPITCH_IPA)))
    symbols = json.loads(unit(plan, "frontend").parameters["symbols"])
    assert symbols["encoding"] == "nemo_ipa" and symbols["tokens"] == IPA_REFERENCE["tokens"]
    assert unit(plan, "acoustic").export.make_module().embedding.num_embeddings == len(
        IPA_REFERENCE["tokens"]
    )
    texts = {
        "dictionary": (folder / "ipa_dictionary.txt").read_text(encoding="utf-8"),
        "heteronyms": (folder / "ipa_heteronyms.txt").read_text(encoding="utf-8"),
    }
    encoder = SymbolEncoder(symbols, None, texts)
    for text, ids in zip(IPA_REFERENCE["texts"], IPA_REFERENCE["ids"], strict=True):
        assert encoder.encode(text) == ids, text
    # 300 seeded random texts (cases, suffixes, hyphens, quotes, stray characters): NeMo's ids,
    # or none where nothing in the text is a letter or phoneme (NeMo gives its padding alone).
    for text, ids in IPA_REFERENCE["random"]:
        ours = encoder.encode(text)
        assert ours == ids or (
            ours == [] and not any(IPA_REFERENCE["tokens"][i].isalnum() for i in ids)
        ), text
    models = InProcessRepository(repository)
    try:
        for text, ids in zip(IPA_REFERENCE["texts"][:3], IPA_REFERENCE["ids"], strict=False):
            out = models.run("tts_nemo_frontend", {"TEXT": np.array([[text.encode()]], object)})
            assert out["SYMBOL_IDS"][0].tolist() == ids, text  # normalization changes nothing
    finally:
        models.close()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["text_tokenizer"]["g2p"].update(locale="de-DE"),
            "sets text_tokenizer.g2p.locale: 'de-DE', which is not supported (supported: 'en-US')",
        ),
        (
            lambda c: c["text_tokenizer"]["g2p"].update(apply_to_oov_word="some.G2PModel"),
            "sets text_tokenizer.g2p.apply_to_oov_word: 'some.G2PModel', which is not supported",
        ),
        (
            lambda c: c["text_tokenizer"]["g2p"].update(phoneme_dict="nemo:missing.txt"),
            "sets text_tokenizer.g2p.phoneme_dict: nemo:missing.txt, but the archive holds no "
            "file missing.txt",
        ),
    ],
    ids=["locale", "oov_model", "missing_dictionary"],
)
def test_an_ipa_setting_that_is_not_implemented_is_refused(
    tmp_path: Path, change, expected
) -> None:
    assert expected in refusal(with_changed_config(tmp_path / "f.nemo", FASTPITCH_IPA, change))


def test_a_text_in_a_script_the_tokenizer_lacks_has_nothing_to_speak(plan) -> None:
    encoder = SymbolEncoder(json.loads(unit(plan, "frontend").parameters["symbols"]))
    assert encoder.encode("\u4f60\u597d\uff0c\u4e16\u754c") == []  # dropped, as NeMo drops them
    assert encoder.encode("\u4f60\u597d, world") == encoder.encode(", world")


@pytest.mark.parametrize("role", ["acoustic", "vocoder"])
def test_the_networks_from_the_files_compute_what_nemo_does(plan, role: str) -> None:
    module = unit(plan, role).export.make_module().eval()
    worst = 0.0
    with torch.inference_mode():
        for i in range(len(REFERENCE["texts"])):
            if role == "acoustic":
                tokens = torch.from_numpy(ARRAYS[f"tokens_{i}"]).view(1, -1)
                count = torch.tensor([[tokens.shape[1]]], dtype=torch.int32)
                mel, length = module(tokens, count, torch.tensor([[1.0]]))
                assert int(length) == REFERENCE["items"][i]["frames"]
                worst = max(worst, relative_error(mel[0].numpy(), ARRAYS[f"mel_{i}"]))
            else:
                mel = torch.from_numpy(ARRAYS[f"mel_{i}"])[None]
                frames = torch.tensor([[mel.shape[2]]], dtype=torch.int32)
                audio, length = module(mel, frames)
                assert int(length) == REFERENCE["items"][i]["samples"]
                worst = max(worst, relative_error(audio[0].numpy(), ARRAYS[f"audio_{i}"]))
    assert worst <= TOLERANCE
    print(f"{role}: PyTorch from the .nemo vs NeMo, max relative error {worst:.1e}")


def test_what_was_read_is_shown_and_a_read_setting_can_be_changed() -> None:
    result = run_cli(
        *overrides(FASTPITCH, HIFIGAN, "model.acoustic_settings.max_pace=2"),
        "--cfg",
        "job",
        "--resolve",
    )
    assert result.returncode == 0, result.stderr
    models = yaml.safe_load(result.stdout)["pipeline"]["models"]
    acoustic, vocoder = models["acoustic"], models["vocoder"]
    assert acoustic["component"] == "nemo_fastpitch" and acoustic["n_symbols"] == 45
    assert acoustic["energy"] is True and acoustic["in_fft_n_heads"] == 2
    assert acoustic["max_pace"] == 2  # the override
    assert acoustic["not_used_at_inference"]["input_fft.dropout"] == 0.1
    assert vocoder["upsample_rates"] == [8, 8, 4] and vocoder["resblock_kernel_sizes"] == [3, 7]
    assert models["synthesizer"]["request_parameters"]["pace"] == [0.25, 2]
    assert models["frontend"]["symbols"]["encoding"] == "nemo_characters"


# Bad files and pairs: each one line naming what is wrong.


def refusal(acoustic: Path = FASTPITCH, vocoder: Path = HIFIGAN) -> str:
    with pytest.raises(UserError) as caught:
        resolve(compose_config(overrides(acoustic, vocoder)))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_swapped_pair_is_refused_by_role() -> None:
    message = refusal(HIFIGAN, FASTPITCH)
    assert message.startswith("model.acoustic: hifigan_small.nemo is a HifiGanModel, a vocoder")
    assert "model.acoustic takes a FastPitchModel" in message and "model.vocoder?" in message
    message = refusal(FASTPITCH, FASTPITCH)
    assert message.startswith("model.vocoder: fastpitch_chars.nemo is a FastPitchModel")


def test_an_unsupported_model_class_is_refused(tmp_path: Path) -> None:
    assert refusal(QUARTZNET).startswith(
        "model.acoustic: quartznet_like.nemo is a EncDecCTCModel, which is not supported as "
        "acoustic (supported: FastPitchModel)"
    )
    tacotron = with_changed_config(
        tmp_path / "tacotron.nemo",
        FASTPITCH,
        lambda c: c.update(target="nemo.collections.tts.models.tacotron2.Tacotron2Model"),
    )
    assert "is a Tacotron2Model, which is not supported" in refusal(tacotron)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["preprocessor"].update(sample_rate=16000),
            "makes mel with a sample rate of 22050, but model.vocoder hifigan.nemo takes a "
            "sample rate of 16000",
        ),
        (
            lambda c: (
                c["preprocessor"].update(nfilt=64),
                c["generator"].update(initial_input_size=64),
            ),
            "a mel bands of 80, but model.vocoder hifigan.nemo takes a mel bands of 64",
        ),
        (
            lambda c: (
                c["preprocessor"].update(n_window_stride=128),
                c["generator"].update(upsample_rates=[8, 8, 2], upsample_kernel_sizes=[16, 16, 4]),
            ),
            "a hop length of 256, but model.vocoder hifigan.nemo takes a hop length of 128",
        ),
        (
            lambda c: c["generator"].update(
                upsample_rates=[8, 8, 2], upsample_kernel_sizes=[16, 16, 4]
            ),
            "generator.upsample_rates make 128 samples per frame, but its preprocessor's hop "
            "is 256",
        ),
        (
            lambda c: c["generator"].update(resblock=2),
            "sets generator.resblock: 2, which is not supported",
        ),
    ],
    ids=["sample_rate", "mel_bands", "hop", "generator_hop", "resblock_2"],
)
def test_a_vocoder_that_does_not_fit_is_refused_by_name(tmp_path: Path, change, expected) -> None:
    assert expected in refusal(
        vocoder=with_changed_config(tmp_path / "hifigan.nemo", HIFIGAN, change)
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["text_tokenizer"].update(
                _target_="nemo.collections.common.tokenizers.text_to_speech.tts_tokenizers."
                "EnglishPhonemesTokenizer"
            ),
            "tts_tokenizers.EnglishPhonemesTokenizer', which is not supported "
            "(supported: EnglishCharsTokenizer, IPATokenizer)",
        ),
        (lambda c: c.update(n_speakers=4), "sets n_speakers: 4, which is not supported"),
        (lambda c: c["input_fft"].update(pre_lnorm=True), "sets input_fft.pre_lnorm: True"),
        (lambda c: c.update(learn_alignment=False), "the older labels parser is not"),
    ],
    ids=["arpabet_tokenizer", "speakers", "pre_lnorm", "labels_parser"],
)
def test_a_fastpitch_setting_that_is_not_implemented_is_refused(
    tmp_path: Path, change, expected
) -> None:
    assert expected in refusal(with_changed_config(tmp_path / "fastpitch.nemo", FASTPITCH, change))


def test_weights_that_do_not_fit_are_listed_by_their_nemo_names(tmp_path: Path) -> None:
    files = nemo_members(HIFIGAN)
    state = torch.load(io.BytesIO(files["model_weights.ckpt"]), weights_only=True)
    del state["generator.conv_post.weight_v"]
    state["mpd.discriminators.0.convs.0.weight"] = torch.zeros(1)  # training only: left
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files["model_weights.ckpt"] = buffer.getvalue()
    message = refusal(vocoder=pack_nemo(tmp_path / "hifigan.nemo", files))
    assert message.startswith("model.vocoder ")
    assert "missing: generator.conv_post.weight" in message
    assert "unused: generator.conv_post.weight_g" in message
    assert "mpd." not in message


def test_a_truncated_or_unsafe_archive_is_refused(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.nemo"
    truncated.write_bytes(HIFIGAN.read_bytes()[:20000])
    message = refusal(vocoder=truncated)
    assert message.startswith(f"model.vocoder {truncated}")
    member = tarfile.TarInfo("../escaped.txt")
    member.size = 4
    folder = tmp_path / "inside"
    folder.mkdir()
    unsafe = pack_nemo(folder / "fastpitch.nemo", nemo_members(FASTPITCH), [member])
    expected = "is refused: member '../escaped.txt' would be written outside the extraction"
    assert expected in refusal(unsafe)
    assert not (tmp_path / "escaped.txt").exists()


def test_code_pickled_in_the_weights_never_runs(tmp_path: Path) -> None:
    files, marker = nemo_members(FASTPITCH), tmp_path / "code_ran"
    buffer = io.BytesIO()
    torch.save({"w": RunsCode(f"touch {shlex.quote(str(marker))}")}, buffer)
    files["model_weights.ckpt"] = buffer.getvalue()
    message = refusal(pack_nemo(tmp_path / "fastpitch.nemo", files))
    assert message.startswith("model.acoustic ")
    assert "model_weights.ckpt was not loaded: it holds pickled Python objects" in message
    assert not marker.exists()


def test_the_command_line_says_one_line_and_writes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "repository"
    result = run_cli(*overrides(HIFIGAN, FASTPITCH), f"output_dir={output}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model.acoustic: "), result.stderr
    assert not output.exists()
    result = run_cli("pipeline=tts_nemo", f"model.vocoder={HIFIGAN}", f"output_dir={output}")
    assert result.returncode == 2 and "model.acoustic" in result.stderr, result.stderr
    assert not output.exists()
