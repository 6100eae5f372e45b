"""In-process reference for an acoustic model + vocoder speech synthesis pipeline (Tacotron 2
-> WaveGlow, FastPitch -> HiFi-GAN): what the served ensemble must say.

Rebuilt from the composed config recorded in the repository's manifest: the front-end's
normalization and character encoding, the PyTorch modules of the acoustic model and vocoder
(same seeded or checkpoint weights), run one sentence at a time through the served
synthesizer's own chain code, so the vocoder noise is drawn per text in the same order and
sentences are joined with the same silence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from modelrepo_gen.components.triton_python.speech_synthesizer import chain_settings, synthesize
from modelrepo_gen.components.triton_python.symbol_encoding import SymbolEncoder
from modelrepo_gen.components.triton_python.tts_text_frontend import encode_text
from modelrepo_gen.core.build_plan import ModelUnit
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.repository.publish import MANIFEST


class _Network:
    """One exported unit's PyTorch module, called by tensor names as the served model is."""

    def __init__(self, unit: ModelUnit) -> None:
        assert unit.export is not None, f"{unit.name} is not a network"
        self.module = unit.export.make_module().eval()
        self.inputs = [spec.name for spec in unit.export.inputs]
        self.outputs = [spec.name for spec in unit.export.outputs]

    def __call__(self, inputs: dict[str, np.ndarray], wanted: list[str]) -> list[np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in self.inputs]
        with torch.inference_mode():
            got = dict(zip(self.outputs, self.module(*args), strict=True))
        return [got[name].numpy() for name in wanted]


class ChainReference:
    """Speaks like the pipeline `cfg` declares (roles frontend, synthesizer, acoustic, vocoder)."""

    def __init__(self, cfg: DictConfig) -> None:
        plan = resolve(cfg)
        units = {unit.role: unit for unit in plan.units}
        frontend, synthesizer = units["frontend"], units["synthesizer"]
        self.rules = json.loads(frontend.parameters["rules"])
        self.encoder = SymbolEncoder(json.loads(frontend.parameters["symbols"]))
        self.limits = tuple(
            int(frontend.parameters[key]) for key in ("max_sentence_symbols", "max_symbols")
        )
        self.chain = chain_settings(synthesizer.parameters)
        self.networks = {slot: _Network(units[slot]) for slot in ("acoustic", "vocoder")}
        self.sample_rate = int(plan.ensemble.parameters["sample_rate"])

    @classmethod
    def from_repository(cls, repository: Path) -> ChainReference:
        manifest = json.loads((Path(repository) / MANIFEST).read_text())
        return cls(OmegaConf.create(manifest["config"]))

    def sentence_ids(self, text: str) -> list[list[int]]:
        return encode_text(text, self.rules, self.encoder, *self.limits)

    def mel(self, ids: list[int], pace: float | None = None) -> tuple[np.ndarray, int, bool]:
        """The acoustic model's mel [n_mel, frames], its length and whether it stopped on its
        own, for one sentence's ids (pace: the configured one when None)."""
        inputs = {
            "SYMBOL_IDS": np.array([ids], dtype=np.int64),
            "SYMBOL_COUNT": np.array([[len(ids)]], dtype=np.int32),
        }
        pace = self.chain["pace"] if pace is None else pace
        if pace is not None:
            inputs["PACE"] = np.array([[pace]], dtype=np.float32)
        acoustic = self.networks["acoustic"]
        wanted = ["MEL", "MEL_LENGTH"] + (["STOPPED"] if "STOPPED" in acoustic.outputs else [])
        outputs = acoustic(inputs, wanted)
        stopped = bool(outputs[2].item()) if len(outputs) > 2 else True
        return outputs[0][0], int(outputs[1].item()), stopped

    def speak(self, text: str, pace: float | None = None) -> tuple[np.ndarray, bool]:
        """The text's audio (float32 at `sample_rate`) and whether a sentence was cut at the
        acoustic model's step limit; `pace` replaces the configured one as the request
        parameter does in the served pipeline."""
        chain = dict(self.chain)
        if pace is not None:
            chain["pace"] = pace
        sentences = [np.array(ids, dtype=np.int64) for ids in self.sentence_ids(text)]

        def call(slot: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> Any:
            return self.networks[slot](inputs, outputs)

        (audio,), (truncated,) = synthesize(call, chain, [sentences], chunk=1)
        return audio, truncated
