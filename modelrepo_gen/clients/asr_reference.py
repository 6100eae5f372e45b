"""The in-process PyTorch pipeline a served CTC ASR repository must agree with.

Rebuilt from the composed config recorded in the repository's manifest: the same feature
extractor, acoustic module (same seeded or checkpoint weights) and greedy decoding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from modelrepo_gen.components.triton_python.ctc_greedy_decoder import greedy_decode
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.repository.publish import MANIFEST


class AsrReference:
    """A CTC ASR pipeline is a chain of networks (features, acoustic model) and a decoder:
    the networks run here in step order, each one's outputs feeding the next."""

    def __init__(self, cfg: DictConfig) -> None:
        plan = resolve(cfg)
        units = {unit.name: unit for unit in plan.units}
        chain = [units[step.model_name] for step in plan.ensemble.steps]
        self.networks = [unit.export.make_module() for unit in chain if unit.export]
        self.features, self.acoustic = self.networks[0], self.networks[-1]
        (decoder,) = [unit for unit in chain if "vocabulary" in unit.parameters]
        self.vocabulary = json.loads(decoder.parameters["vocabulary"])
        self.sample_rate = int(plan.ensemble.parameters["sample_rate"])

    @classmethod
    def from_repository(cls, repository: Path) -> AsrReference:
        manifest = json.loads((Path(repository) / MANIFEST).read_text())
        return cls(OmegaConf.create(manifest["config"]))

    def logprobs(self, audio: np.ndarray) -> np.ndarray:
        """Log-probabilities [frames, classes] of one utterance (float32 mono samples)."""
        signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).view(1, -1)
        length = torch.tensor([[signal.shape[1]]], dtype=torch.int32)
        tensors = (signal, length)
        with torch.inference_mode():
            for network in self.networks:
                tensors = network(*tensors)
        logprobs, frames = tensors
        return logprobs[0, : int(frames)].numpy()

    def transcribe(self, audio: np.ndarray) -> str:
        logprobs = self.logprobs(audio)
        return greedy_decode(logprobs, len(logprobs), self.vocabulary)
