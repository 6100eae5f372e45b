"""The ASR client over real HTTP and gRPC, against a stand-in ASR ensemble on a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers.triton_fixtures import ASR_ENSEMBLE, encode_text, write_echo_model, write_standin_asr

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.processes import free_port
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import (
    main,
    normalize_text,
    read_manifest,
    transcribe_arrays,
    word_errors,
)


@pytest.fixture(scope="module")
def asr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("asr") / "repo"
    write_standin_asr(repository)
    write_echo_model(repository)  # not an ensemble: default model discovery must skip it
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        yield server


def _url(server: TritonServer, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


def _write_wav(path: Path, text: str) -> Path:
    soundfile.write(path, encode_text(text), 16000, subtype="PCM_16")
    return path


# -- no server needed --------------------------------------------------------------------------
def test_normalize_text_keeps_letters_apostrophes_and_spaces() -> None:
    assert normalize_text("  Don't STOP -- it's 4 o'clock, Mr. Smith!\n") == (
        "don't stop it's o'clock mister smith"
    )


def test_word_errors_count_all_edits() -> None:
    result = word_errors(["the cat sat", "a dog"], ["The cat, sat on", "dog"])
    assert (result.errors, result.reference_words) == (2, 5)
    assert result.rate == pytest.approx(0.4)


def test_manifest_paths_resolve_against_its_folder(tmp_path: Path) -> None:
    manifest = tmp_path / "sub" / "manifest.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(
        json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "a"})
        + "\n\n"
        + json.dumps({"audio_filepath": "/abs/b.wav", "duration": 2.0, "text": "b"})
        + "\n"
    )
    entries = read_manifest(manifest)
    assert [e.audio_path for e in entries] == [manifest.parent / "a.wav", Path("/abs/b.wav")]
    manifest.write_text('{"audio_filepath": "a.wav"}\n{"text": "no audio"}\n')
    with pytest.raises(UserError, match=r"manifest.jsonl:2: needs an \"audio_filepath\""):
        read_manifest(manifest)


def test_unreachable_server_is_a_user_error() -> None:
    url = f"127.0.0.1:{free_port()}"
    for protocol in ("http", "grpc"):
        with pytest.raises(UserError, match=f"Triton at '{url}' \\({protocol}\\) failed"):
            transcribe_arrays([encode_text("x")], url, protocol, model_name=ASR_ENSEMBLE)


# -- against the served stand-in ---------------------------------------------------------------
@pytest.mark.server
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_transcribes_over_both_protocols(asr_server: TritonServer, protocol: str) -> None:
    texts = ["hello world", "naïve café", "a third utterance"]
    audios = [encode_text(t) for t in texts]
    # No model name: the server's only ensemble is found through the repository index.
    assert transcribe_arrays(audios, _url(asr_server, protocol), protocol) == texts


@pytest.mark.server
def test_concurrency_preserves_order_and_overlaps_requests(asr_server: TritonServer) -> None:
    texts = [f"utterance number {i} " + "x" * (7 * i % 23) for i in range(16)]
    result = transcribe_arrays(
        [encode_text(t) for t in texts], asr_server.grpc_url, "grpc", ASR_ENSEMBLE, concurrency=4
    )
    assert result == texts
    # Each "slow" request sleeps 0.5 s in one of two model instances: 6 of them take 3 s one
    # at a time and about 1.5 s when requests really overlap.
    slow = [encode_text(f"slow {i}") for i in range(6)]
    started = time.monotonic()
    result = transcribe_arrays(slow, asr_server.http_url, "http", ASR_ENSEMBLE, concurrency=3)
    assert result == [f"slow {i}" for i in range(6)]
    assert time.monotonic() - started < 2.7


@pytest.mark.server
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_server_side_error_is_a_user_error(asr_server: TritonServer, protocol: str) -> None:
    audios = [encode_text("fine"), encode_text("raise error please")]
    with pytest.raises(UserError, match="stand-in model refuses: raise error please"):
        transcribe_arrays(audios, _url(asr_server, protocol), protocol, concurrency=2)


@pytest.mark.server
def test_wrong_model_names_are_user_errors(asr_server: TritonServer) -> None:
    audio = [encode_text("x")]
    with pytest.raises(UserError, match="model 'nope' is not ready.*asr_standin"):
        transcribe_arrays(audio, asr_server.http_url, model_name="nope")
    with pytest.raises(UserError, match="model 'echo' is not an ASR ensemble"):
        transcribe_arrays(audio, asr_server.http_url, model_name="echo")
    with pytest.raises(UserError, match="audio is empty"):
        transcribe_arrays([np.zeros(0, np.float32)], asr_server.http_url)


@pytest.mark.server
def test_cli_transcribes_files(
    asr_server: TritonServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _write_wav(tmp_path / "first.wav", "good morning")
    second = _write_wav(tmp_path / "second.wav", "good night")
    code = main(["--url", asr_server.http_url, "--concurrency", "2", str(first), str(second)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [f"{first}\tgood morning", f"{second}\tgood night"]


@pytest.mark.server
def test_cli_manifest_prints_word_error_rate(
    asr_server: TritonServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    _write_wav(audio_dir / "one.wav", "the quick brown fox")
    absolute = _write_wav(tmp_path / "two.wav", "jumps over the dog")
    manifest = audio_dir / "manifest.jsonl"
    records = [  # references in book style: case and punctuation must not count as errors
        {"audio_filepath": "one.wav", "duration": 0.001, "text": "The quick, brown fox"},
        {"audio_filepath": str(absolute), "duration": 0.001, "text": "jumps over the lazy dog."},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))

    code = main(["--url", asr_server.grpc_url, "--protocol", "grpc", "--manifest", str(manifest)])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[:2] == [
        f"{audio_dir / 'one.wav'}\tthe quick brown fox",
        f"{absolute}\tjumps over the dog",
    ]
    # One deletion ("lazy") over nine reference words.
    assert lines[2] == "WER: 11.11% (1 errors / 9 reference words, 2 utterances)"


@pytest.mark.server
def test_cli_bad_audio_file_is_one_error_line(
    asr_server: TritonServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    code = main(["--url", asr_server.http_url, str(bad)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: cannot read audio file '{bad}'") and err.count("\n") == 1
