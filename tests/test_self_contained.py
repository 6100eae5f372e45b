"""Deployed repositories carry their python models' packages: served by the bundled tritonserver
from a bare Python (only nvidia-pytriton, without its dependencies, and numpy < 2, as NVIDIA's
container has), each answers exactly as the direct build served from the project's environment.

One pipeline of each family (CTC, Whisper, NLP, speech synthesis), each from an encrypted
archive, as a user moves a pipeline to a serving machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers.deploy_command import deploy
from helpers.project import compose_config
from helpers.served_requests import connect, infer

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.serve.server import TritonServer

pytestmark = pytest.mark.server

KEY = "self-contained test key"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with nvidia-pytriton (no dependencies) and numpy < 2 only."""
    folder = tmp_path_factory.mktemp("bare") / "venv"
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "nvidia-pytriton==0.7.0", "numpy==1.26.4"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,  # not the checkout, whose egg-info would be listed
    )
    assert listed.stdout.strip() == "['numpy', 'nvidia-pytriton']"
    return python


def speech() -> np.ndarray:
    clip = sorted(LIBRIVOX.glob("*.wav"))[0]
    audio, _ = soundfile.read(clip, dtype="float32")
    return audio


def text(value: str) -> np.ndarray:
    return np.array([[value.encode()]], dtype=object)


def tiny_text_overrides(folder: Path) -> list[str]:
    from helpers.text_fixtures import save_tiny_text_folder

    checkpoint = save_tiny_text_folder(folder / "checkpoint", "nlp_text_classification")
    return [
        "pipeline=nlp_text_classification",
        f"model.path={checkpoint}",
        "model.max_seq_length=32",
    ]


def whisper_overrides(folder: Path) -> list[str]:
    from helpers.whisper_fixtures import tiny_en_folder

    tiny_en_folder()  # skips where the weights are not installed
    # The CTranslate2 runtime: its compiled library (and the OpenMP it brings) must travel too;
    # the features model is onnxruntime's, as the other runtime's networks.
    return ["pipeline=asr_whisper", "pipeline.max_audio_seconds=30", "whisper_runtime=ctranslate2"]


# family -> (overrides, the ensemble's inputs)
FAMILIES = {
    "ctc": (
        lambda folder: ["pipeline=asr_quartznet", "model=quartznet_mini"],
        lambda: {
            "AUDIO_SIGNAL": speech()[None],
            "NUM_SAMPLES": np.array([[speech().size]], np.int32),
        },
    ),
    "whisper": (
        whisper_overrides,
        lambda: {
            "AUDIO_SIGNAL": speech()[None],
            "NUM_SAMPLES": np.array([[speech().size]], np.int32),
        },
    ),
    "nlp": (tiny_text_overrides, lambda: {"TEXT": text("The service was quick and friendly.")}),
    "tts": (
        lambda folder: [
            "pipeline=tts_fastpitch_hifigan",
            "model@pipeline.models.acoustic=fastpitch_mini",
            "model@pipeline.models.vocoder=hifigan_mini",
        ],
        lambda: {"TEXT": text("Deploy it anywhere, Zoë said.")},
    ),
    # Its phonemes come from piper-tts's espeak-ng library, packed like any package: the
    # server needs no espeak-ng program. No noise: the same ids give the same audio.
    "piper": (
        lambda folder: ["pipeline=tts_piper", "model.noise_scale=0", "model.noise_w=0"],
        lambda: {"TEXT": text("Zoë's café serves crème brûlée. Wow... really?!")},
    ),
}


def triton_type(module, array: np.ndarray) -> str:  # noqa: ANN001 - tritonclient's module
    return "BYTES" if array.dtype == object else module.np_to_triton_dtype(array.dtype)


def answers(server: TritonServer, ensemble: str, inputs: dict[str, np.ndarray]) -> dict:
    """Every output of `ensemble` for `inputs`, over HTTP."""
    module, client = connect(server, "http")
    try:
        outputs = [o["name"] for o in client.get_model_metadata(ensemble)["outputs"]]
        tensors = {name: (array, triton_type(module, array)) for name, array in inputs.items()}
        return infer(module, client, ensemble, tensors, outputs)
    finally:
        client.close()


@pytest.fixture(scope="module", params=list(FAMILIES))
def built(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    family = request.param
    make_overrides, make_inputs = FAMILIES[family]
    folder = tmp_path_factory.mktemp(family)
    overrides = make_overrides(folder)
    key = folder / "archive.key"
    key.write_text(KEY)
    archive = folder / "pipeline.mrga"
    cfg = compose_config([*overrides, f"archive={archive}", f"archive_key_file={key}"])
    build_repository(cfg, folder / "unused")
    # As built (what the direct build writes: test_archives.py), and with its packages.
    for output, options in (("direct", ["--python-env", "none"]), ("deployed", [])):
        done = deploy(archive, folder / output, "--key-file", key, *options)
        assert done.returncode == 0, done.stderr
    yield family, folder, make_inputs()


def test_deployed_repository_served_from_a_bare_python_answers_as_the_direct_build(
    built, bare_python
) -> None:
    family, folder, inputs = built
    deployed = folder / "deployed"
    manifest = json.loads((deployed / "manifest.json").read_text())
    ensemble = next(n for n, m in manifest["models"].items() if m["platform"] == "ensemble")
    packed = manifest["python_environment"]
    assert packed["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "onnxruntime" in packed["packages"]
    if family == "piper":
        assert "piper-tts" in packed["packages"]
    if family == "whisper":
        assert "ctranslate2" in packed["packages"]
    with TritonServer(folder / "direct", 0, 0, 0) as server:
        expected = answers(server, ensemble, inputs)
    with TritonServer(deployed, 0, 0, 0, python=bare_python) as server:
        served = answers(server, ensemble, inputs)
    assert set(served) == set(expected)
    for name in expected:
        assert np.array_equal(served[name], expected[name]), (family, name)
