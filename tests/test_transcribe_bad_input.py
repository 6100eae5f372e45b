"""Every bad input to the transcription client ends with one `error:` line and a non-zero exit.

Most rows need no server: arguments and local files are checked before one is asked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
from helpers.project import ROOT
from helpers.triton_fixtures import encode_text, write_standin_asr

from modelrepo_gen.serve.processes import free_port
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import main


def _files(tmp: Path) -> dict[str, Path]:
    """The local inputs the rows refer to, by name."""
    files = {
        "non_utf8": b'\xff\xfe{"audio_filepath": "a.wav"}\n',
        "latin1_second_line": '{"audio_filepath": "a.wav"}\n{"text": "caf\xe9"}\n'.encode(
            "latin-1"
        ),
        "not_json": b"a.wav 1.0 hello\n",
        "json_list": b"[1, 2]\n",
        "no_audio_path": b'{"text": "hello", "duration": 1.0}\n',
        "empty_audio_path": b'{"audio_filepath": " "}\n',
        "empty": b"",
        "blank_lines": b"\n\n  \n",
        "lists_missing_audio": b'{"audio_filepath": "gone.wav"}\n',
        "not_audio.wav": b"RIFF but not really a wave file",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp / name
        paths[name].write_bytes(data)
    soundfile.write(tmp / "a.wav", encode_text("fine"), 16000, subtype="PCM_16")
    paths["wav"] = tmp / "a.wav"
    return paths


ROWS = [
    # (arguments, with {name} for a local file or {closed} for a port nothing listens on (found
    # when the test runs: the ids stay the same in every pytest-xdist worker), fragment of the
    # error line, exit code)
    (["--manifest", "{non_utf8}"], "non_utf8:1: not UTF-8 text (byte 0xff)", 1),
    (["--manifest", "{latin1_second_line}"], "latin1_second_line:2: not UTF-8 text", 1),
    (["--manifest", "{not_json}"], "not_json:1: not a JSON object", 1),
    (["--manifest", "{json_list}"], 'json_list:1: needs an "audio_filepath" string', 1),
    (["--manifest", "{no_audio_path}"], 'no_audio_path:1: needs an "audio_filepath"', 1),
    (["--manifest", "{empty_audio_path}"], '"audio_filepath" is empty', 1),
    (["--manifest", "{empty}"], "lists no audio", 1),
    (["--segments", "--manifest", "{empty}"], "--segments prints segments of audio files", 1),
    (["--manifest", "{blank_lines}"], "lists no audio", 1),
    (["--manifest", "{lists_missing_audio}"], "gone.wav' does not exist (listed at", 1),
    (["--manifest", "{nowhere}"], "cannot read manifest", 1),
    (["{nowhere}"], "nowhere' does not exist", 1),
    (["{folder}"], "' is not a file", 1),
    (["--url", "127.0.0.1:99999", "{wav}"], "port must be between 1 and 65535, got 99999", 1),
    (["--url", "localhost:0", "{wav}"], "port must be between 1 and 65535, got 0", 1),
    (["--url", "http://127.0.0.1:8000", "{wav}"], "server URL must be host:port", 1),
    (["--url", "127.0.0.1", "{wav}"], "server URL must be host:port", 1),
    (["--sample-rate", "0", "{wav}"], "--sample-rate must be between 1 and 384000 Hz, got 0", 1),
    (["--sample-rate", "-16000", "{wav}"], "--sample-rate must be between 1 and 384000", 1),
    (["--sample-rate", "1000000000", "{wav}"], "--sample-rate must be between 1 and", 1),
    (["--sample-rate", "16k", "{wav}"], "argument --sample-rate: invalid int value", 2),
    (["--concurrency", "0", "{wav}"], "--concurrency must be at least 1", 1),
    (["--concurrency", "-3", "{wav}"], "--concurrency must be at least 1", 1),
    (["--concurrency", "many", "{wav}"], "argument --concurrency: invalid int value", 2),
    (["--protocol", "ftp", "{wav}"], "argument --protocol: invalid choice", 2),
    (["--bogus", "{wav}"], "unrecognized arguments: --bogus", 2),
    ([], "give either audio files or --manifest", 1),
    (["{wav}", "--manifest", "{empty}"], "give either audio files or --manifest", 1),
    (["--url", "{closed}", "{wav}"], "Connection refused (is a Triton server running", 1),
    (["--protocol", "grpc", "--url", "{closed}", "{wav}"], "Connection refused (is a Triton", 1),
]


def _exit_code(argv: list[str]) -> int:
    """main()'s return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize(("args", "expected", "code"), ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_bad_input_is_one_error_line(tmp_path, capsys, args, expected, code) -> None:
    paths = {**_files(tmp_path), "nowhere": tmp_path / "nowhere", "folder": tmp_path}
    paths["closed"] = f"127.0.0.1:{free_port()}"
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]
    assert _exit_code(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--url", "127.0.0.1:99999"], "port must be between 1 and 65535"),
        (["--protocol", "grpc", "--url", "127.0.0.1:99999"], "port must be between 1 and 65535"),
        (["--sample-rate", "0"], "--sample-rate must be between 1"),
    ],
)
def test_real_process_prints_one_line_and_nothing_at_exit(tmp_path, args, expected) -> None:
    """A tritonclient built from a bad URL used to print a traceback at interpreter exit."""
    wav = _files(tmp_path)["wav"]
    result = subprocess.run(
        [sys.executable, "-m", "modelrepo_gen.transcribe", *args, str(wav)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.server
def test_non_audio_file_and_sample_rate_against_a_server(tmp_path, capsys) -> None:
    repository = tmp_path / "repo"
    write_standin_asr(repository)
    paths = _files(tmp_path)
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        code = main(["--url", server.http_url, str(paths["not_audio.wav"])])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1
        assert err.startswith(f"error: cannot read audio file '{paths['not_audio.wav']}'")
        # An explicit rate is used, not ignored: the stand-in decodes 16 kHz text exactly.
        assert main(["--url", server.http_url, "--sample-rate", "16000", str(paths["wav"])]) == 0
        assert capsys.readouterr().out.split("\t")[1].strip() == "fine"
