"""A speech synthesis repository run in this process (InProcessRepository, the same models
and request code as served): the audio its served ensemble must give. Each text and setting is
spoken once per module: the voices take a while on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelrepo_gen.clients.in_process_repository import InProcessRepository
from modelrepo_gen.clients.tts_client import Speech, infer_speech


class InProcessSpeech:
    def __init__(self, repository: Path, ensemble: str, defaults: dict | None = None) -> None:
        """`defaults`: request parameters sent unless a call names them (e.g. no noise)."""
        self.models = InProcessRepository(repository)
        self.ensemble = ensemble
        self.config = self.models.get_model_config(ensemble)
        self.defaults = dict(defaults or {})
        self._spoken: dict[tuple, Speech] = {}

    def speech(self, text: str, **parameters: float) -> Speech:
        chosen = {**self.defaults, **parameters}
        key = (text, *sorted(chosen.items()))
        if key not in self._spoken:
            self._spoken[key] = infer_speech(
                self.models, "in_process", self.ensemble, self.config, text, chosen or None
            )
        return self._spoken[key]

    def speak(self, text: str, **parameters: float) -> np.ndarray:
        return self.speech(text, **parameters).audio

    def sentence_ids(self, text: str) -> list[list[int]]:
        """The symbol ids of each sentence, as the pipeline's front-end cuts the text."""
        text_tensor = np.array([[text.encode("utf-8")]], dtype=object)
        out = self.models.run(f"{self.ensemble}_frontend", {"TEXT": text_tensor})
        ids, lengths = out["SYMBOL_IDS"][0], out["SENTENCE_LENGTHS"][0]
        starts = np.cumsum([0, *lengths[:-1]])
        return [ids[s : s + n].tolist() for s, n in zip(starts, lengths) if n > 0]

    def close(self) -> None:
        self.models.close()
