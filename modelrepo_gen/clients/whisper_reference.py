"""The in-process Whisper pipeline a served Whisper repository must agree with.

The same front end the repository serves (WhisperLogMel), the imported model, and transformers'
plain greedy search started from the forced prompt (start of transcript [, English, transcribe],
no timestamps) with Whisper's suppressed tokens: the loop a served generation model repeats.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import GenerationMixin

from modelrepo_gen.components.networks.whisper_features import WhisperLogMel
from modelrepo_gen.loaders.whisper import load_whisper


class WhisperReference:
    """Transcribes 16 kHz float32 mono audio with a Whisper model folder (CTranslate2 or HF)."""

    def __init__(self, model_path: Path | str) -> None:
        self.model, tokenizer_json, self.facts = load_whisper(model_path)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.features = WhisperLogMel().eval()

    def token_ids(self, clips: Sequence[np.ndarray]) -> list[list[int]]:
        """Greedy token ids per clip, the forced prompt first, the end-of-text token dropped."""
        longest = max(len(clip) for clip in clips)
        audio = torch.zeros(len(clips), longest)
        for row, clip in zip(audio, clips):
            row[: len(clip)] = torch.from_numpy(np.asarray(clip, dtype=np.float32))
        lengths = torch.tensor([[len(clip)] for clip in clips], dtype=torch.int32)
        prompt = torch.tensor([self.facts.prompt_ids] * len(clips))
        with torch.inference_mode(), warnings.catch_warnings():
            features = self.features(audio, lengths)
            # transformers notes that these suppress lists are ones Whisper's own generate sets.
            warnings.simplefilter("ignore", FutureWarning)
            # GenerationMixin's search, not Whisper's long-form wrapper around it.
            sequences = GenerationMixin.generate(
                self.model,
                input_features=features,
                decoder_input_ids=prompt,
                # Every frame counts (the window is always whole); saying so spares a guess.
                attention_mask=torch.ones(features.shape[0], features.shape[2], dtype=torch.long),
                generation_config=self.model.generation_config,
            )
        eos = self.facts.eos_token_id
        return [[t for t in row.tolist() if t != eos] for row in sequences]

    def transcribe_batch(self, clips: Sequence[np.ndarray]) -> list[str]:
        skip = len(self.facts.prompt_ids)
        return [
            self.tokenizer.decode(ids[skip:], skip_special_tokens=True).strip()
            for ids in self.token_ids(clips)
        ]

    def transcribe(self, audio: np.ndarray) -> str:
        return self.transcribe_batch([audio])[0]
