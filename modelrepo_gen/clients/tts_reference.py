"""In-process reference for a Piper speech synthesis pipeline: what the served ensemble must say.

The same composed config the build reads, run without Triton: the front-end's normalization
and phoneme encoding, the voice's own ONNX in onnxruntime one sentence at a time with the
configured scales, and the sentences joined with the configured silence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig

from modelrepo_gen.components.piper_voice_source import voice_facts, voice_file
from modelrepo_gen.components.triton_python.piper_voice import SCALES, speak
from modelrepo_gen.components.triton_python.speech_synthesizer import synthesize
from modelrepo_gen.components.triton_python.symbol_encoding import SymbolEncoder
from modelrepo_gen.components.triton_python.tts_text_frontend import encode_text
from modelrepo_gen.core.validation import plain


class PiperReference:
    """Speaks like the pipeline `cfg` declares (roles frontend, synthesizer, voice)."""

    def __init__(self, cfg: DictConfig) -> None:
        import onnxruntime

        models = plain(cfg.pipeline.models)
        frontend, synthesizer, voice = models["frontend"], models["synthesizer"], models["voice"]
        self.rules = frontend["rules"]
        self.limits = (int(frontend["max_sentence_symbols"]), int(frontend["max_symbols"]))
        self.encoder = SymbolEncoder(frontend["symbols"], voice_facts(voice["path"]))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(voice["threads"])  # as the served voice runs
        self.session = onnxruntime.InferenceSession(
            str(voice_file(voice["path"])), options, providers=["CPUExecutionProvider"]
        )
        self.scales = np.array([voice[name] for name in SCALES], dtype=np.float32)
        self.speaker_id = voice["speaker_id"]
        self.sample_rate = int(synthesizer["sample_rate"])
        self.chain = {
            "chain": "voice",
            "silence_samples": round(synthesizer["sentence_silence_seconds"] * self.sample_rate),
            "noise_seed": 0,
        }

    def sentence_ids(self, text: str) -> list[list[int]]:
        return encode_text(text, self.rules, self.encoder, *self.limits)

    def _call(self, scales: np.ndarray, inputs: dict[str, np.ndarray]) -> Any:
        clips = [
            speak(self.session, row[: int(n)], scales, self.speaker_id)
            for row, n in zip(inputs["SYMBOL_IDS"], inputs["SYMBOL_COUNT"].reshape(-1))
        ]
        audio = np.zeros((len(clips), max(len(c) for c in clips)), dtype=np.float32)
        for row, clip in zip(audio, clips):
            row[: len(clip)] = clip
        return audio, np.array([[len(c)] for c in clips], dtype=np.int32)

    def speak(self, text: str, **scales: float) -> np.ndarray:
        """The text's audio (float32 at `sample_rate`): one sentence per voice run, joined;
        `scales` (noise_scale, length_scale, noise_w) replace the configured ones, as the
        same request parameters do in the served pipeline."""
        chosen = self.scales.copy()
        for name, value in scales.items():
            chosen[SCALES.index(name)] = value
        sentences = [np.array(ids, dtype=np.int64) for ids in self.sentence_ids(text)]

        def call(slot: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> Any:
            return self._call(chosen, inputs)

        (audio,), _ = synthesize(call, self.chain, [sentences], chunk=1)
        return audio
