"""A second speech ensemble beside tts_piper, for the synthesizer's acoustic_vocoder chain on
the real server: the same front-end, the real synthesizer code configured by its component
(chain acoustic_vocoder with PACE, STOPPED and server-side NOISE), and two tiny numpy models
with the interface of the real acoustic model and vocoder, whose output the test can compute.

Acoustic: one mel frame per symbol, at most STEP_LIMIT frames (then STOPPED is false), every
band holding the symbol id times PACE. Vocoder: each frame's value HOP times, plus the noise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from modelrepo_gen.assembly.render import (
    parse_model_config,
    render_ensemble_config,
    render_model_config,
)
from modelrepo_gen.components.speech_synthesizer import (
    AcousticVocoderSettings,
    AcousticVocoderSynthesizer,
)
from modelrepo_gen.components.triton_python import model_code
from modelrepo_gen.core.build_plan import (
    DynamicBatching,
    Ensemble,
    EnsembleStep,
    ModelUnit,
    Serving,
    TensorSpec,
)

CHAIN = "tts_chain"
N_MEL, HOP, STEP_LIMIT, RATE = 4, 3, 120, 22050
SETTINGS = AcousticVocoderSettings(
    sample_rate=RATE,
    sentence_silence_seconds=0.001,
    hop_length=HOP,
    pace=1.0,
    reports_stop=True,
    noise_sigma=0.5,
    noise_seed=11,
    request_parameters={"pace": [0.25, 4.0]},
)

ACOUSTIC_PY = f"""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            ids = pb_utils.get_input_tensor_by_name(request, "SYMBOL_IDS").as_numpy()
            counts = pb_utils.get_input_tensor_by_name(request, "SYMBOL_COUNT").as_numpy()
            pace = pb_utils.get_input_tensor_by_name(request, "PACE").as_numpy()
            counts = counts.reshape(-1)
            frames = np.minimum(counts, {STEP_LIMIT})
            mel = np.zeros((len(counts), {N_MEL}, frames.max()), dtype=np.float32)
            for row, n in enumerate(frames):
                mel[row, :, :n] = ids[row, :n] * pace[row, 0]
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("MEL", mel),
                pb_utils.Tensor("MEL_LENGTH", frames.reshape(-1, 1).astype(np.int32)),
                pb_utils.Tensor("STOPPED", (counts <= {STEP_LIMIT}).reshape(-1, 1)),
            ]))
        return responses
"""

# The vocoder scales its audio into [-1, 1] (ids of up to ~150 times the pace), which the
# synthesizer clips to; a power of two keeps float32 exact.
AUDIO_SCALE = 1 / 1024
VOCODER_PY = f"""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            mel = pb_utils.get_input_tensor_by_name(request, "MEL").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "MEL_LENGTH").as_numpy()
            noise = pb_utils.get_input_tensor_by_name(request, "NOISE").as_numpy()
            audio = (np.repeat(mel[:, 0, :], {HOP}, axis=1) + noise) * {AUDIO_SCALE}
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("AUDIO", audio.astype(np.float32)),
                pb_utils.Tensor("AUDIO_LENGTH", (lengths * {HOP}).astype(np.int32)),
            ]))
        return responses
"""

FP32, INT32, INT64, BOOL = "TYPE_FP32", "TYPE_INT32", "TYPE_INT64", "TYPE_BOOL"
SERVING = Serving(8, DynamicBatching((), 1000), 1, "KIND_CPU")


def expected_chain_audio(sentences: list[list[int]], pace: float) -> tuple[np.ndarray, bool]:
    """What the chain must answer for one text's sentence ids, written out by hand."""
    generator = np.random.default_rng(SETTINGS.noise_seed)
    pieces = []
    for ids in sentences:
        frames = np.asarray(ids[:STEP_LIMIT], dtype=np.float32) * np.float32(pace)
        noise = generator.standard_normal(len(frames) * HOP, dtype=np.float32)
        audio = np.repeat(frames, HOP) + noise * np.float32(SETTINGS.noise_sigma)
        pieces += [audio * np.float32(AUDIO_SCALE)]
        pieces += [np.zeros(round(SETTINGS.sentence_silence_seconds * RATE), np.float32)]
    truncated = any(len(ids) > STEP_LIMIT for ids in sentences)
    return np.concatenate(pieces[:-1]), truncated


def _write(repository: Path, unit: ModelUnit, code: str) -> None:
    version = repository / unit.name / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(code)
    text = render_model_config(unit, CHAIN)
    parse_model_config(text, unit.name)
    (repository / unit.name / "config.pbtxt").write_text(text)


def add_chain(repository: Path, frontend: str) -> None:
    """Add the tts_chain ensemble and its three models to a built tts_piper repository."""
    component = AcousticVocoderSynthesizer()
    component.check(SETTINGS, "tts_chain")
    signature = component.signature(SETTINGS)
    acoustic = ModelUnit(
        f"{CHAIN}_acoustic",
        "acoustic",
        (
            TensorSpec("SYMBOL_IDS", INT64, (-1,), ragged=True),
            TensorSpec("SYMBOL_COUNT", INT32, (1,)),
            TensorSpec("PACE", FP32, (1,)),
        ),
        (
            TensorSpec("MEL", FP32, (N_MEL, -1)),
            TensorSpec("MEL_LENGTH", INT32, (1,)),
            TensorSpec("STOPPED", BOOL, (1,)),
        ),
        SERVING,
        "python",
    )
    vocoder = ModelUnit(
        f"{CHAIN}_vocoder",
        "vocoder",
        (
            TensorSpec("MEL", FP32, (N_MEL, -1), ragged=True),
            TensorSpec("MEL_LENGTH", INT32, (1,)),
            TensorSpec("NOISE", FP32, (-1,), ragged=True),
        ),
        (TensorSpec("AUDIO", FP32, (-1,)), TensorSpec("AUDIO_LENGTH", INT32, (1,))),
        SERVING,
        "python",
    )
    parameters = component.parameters(SETTINGS)
    parameters["calls"] = json.dumps(
        {slot: {"model": u.name, "max_batch_size": 8} for slot, u in (("acoustic", acoustic),
                                                                      ("vocoder", vocoder))}
    )  # fmt: skip
    synthesizer = ModelUnit(
        f"{CHAIN}_synthesizer",
        "synthesizer",
        signature.inputs,
        signature.outputs,
        SERVING,
        "python",
        component="acoustic_vocoder_synthesizer",
        parameters=parameters,
    )
    _write(repository, acoustic, ACOUSTIC_PY)
    _write(repository, vocoder, VOCODER_PY)
    code = model_code("speech_synthesizer")  # model.py and the modules beside it
    _write(repository, synthesizer, code.pop("model.py").read_text())
    for name, source in code.items():
        shutil.copyfile(source, repository / synthesizer.name / "1" / name)
    ensemble = Ensemble(
        name=CHAIN,
        max_batch_size=8,
        inputs=(TensorSpec("TEXT", "TYPE_STRING", (1,)),),
        outputs=signature.outputs,
        steps=(
            EnsembleStep(frontend, (("TEXT", "TEXT"),), (("SYMBOL_IDS", "ids"),
                         ("SENTENCE_LENGTHS", "lengths"))),
            EnsembleStep(synthesizer.name, (("SYMBOL_IDS", "ids"), ("SENTENCE_LENGTHS", "lengths")),
                         tuple((s.name, s.name) for s in signature.outputs)),
        ),
    )  # fmt: skip
    (repository / CHAIN / "1").mkdir(parents=True)
    text = render_ensemble_config(ensemble, CHAIN)
    parse_model_config(text, CHAIN)
    (repository / CHAIN / "config.pbtxt").write_text(text)
