"""The in-process Whisper pipeline a served Whisper repository must agree with.

The same front end the repository serves (WhisperLogMel), the imported model, and transformers'
plain greedy search started from the forced prompt (start of transcript [, English, transcribe]
[, no timestamps]) with Whisper's suppressed tokens and, with timestamps, transformers' own
timestamp rules: the loop a served generation model repeats. Long audio is decoded window after
window, each starting where the last one's last complete segment ended, as the served generator
and Whisper's transcribe seek.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import GenerationMixin, LogitsProcessorList
from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

from modelrepo_gen.components.networks.whisper_features import WhisperFeaturesConfig, WhisperLogMel
from modelrepo_gen.components.triton_python.whisper_timestamps import (
    MAX_INITIAL_STEP,
    window_segments,
)
from modelrepo_gen.loaders.whisper import load_whisper


class WhisperReference:
    """Transcribes 16 kHz float32 mono audio with a Whisper model folder (CTranslate2 or HF)."""

    def __init__(self, model_path: Path | str, timestamps: str = "long_audio") -> None:
        """`timestamps`: which recordings are decoded with timestamps, as the generator's
        setting of that name says (always, long_audio, never)."""
        self.model, tokenizer_json, self.facts = load_whisper(model_path)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        mels = self.model.config.num_mel_bins  # 80, or 128 (large-v3)
        self.features = WhisperLogMel(WhisperFeaturesConfig(n_mels=mels)).eval()
        self.timestamps = timestamps

    def prompt(self, stamped: bool) -> tuple[int, ...]:
        """The prompt ends with the no-timestamps token; decoding with timestamps leaves it out."""
        return self.facts.prompt_ids[:-1] if stamped else self.facts.prompt_ids

    def _timestamp_rules(self, stamped: bool) -> LogitsProcessorList:
        if not stamped:
            return LogitsProcessorList()
        config = self.model.generation_config
        config.max_initial_timestamp_index = MAX_INITIAL_STEP
        begin = len(self.prompt(stamped))
        return LogitsProcessorList([WhisperTimeStampLogitsProcessor(config, begin)])

    def token_ids(self, clips: Sequence[np.ndarray], stamped: bool = False) -> list[list[int]]:
        """Greedy token ids per clip (at most one window each), the forced prompt first, the
        end-of-text token dropped; `stamped`: with timestamps."""
        longest = max(len(clip) for clip in clips)
        audio = torch.zeros(len(clips), longest)
        for row, clip in zip(audio, clips):
            row[: len(clip)] = torch.from_numpy(np.asarray(clip, dtype=np.float32))
        lengths = torch.tensor([[len(clip)] for clip in clips], dtype=torch.int32)
        prompt = torch.tensor([self.prompt(stamped)] * len(clips))
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
                logits_processor=self._timestamp_rules(stamped),
            )
        eos = self.facts.eos_token_id
        return [[t for t in row.tolist() if t != eos] for row in sequences]

    def segments(self, clips: Sequence[np.ndarray]) -> list[list[tuple[float, float, str]]]:
        """(start s, end s, text) of each segment with text, per clip: window after window, the
        current windows of the clips decoded alike in one batch."""
        window, rate = WhisperFeaturesConfig().chunk_samples, WhisperFeaturesConfig().sample_rate
        found: list[list[tuple[float, float, str]]] = [[] for _ in clips]
        seeks = [0] * len(clips)
        stamped = [
            self.timestamps == "always" or (self.timestamps == "long_audio" and len(c) > window)
            for c in clips
        ]
        pending = list(range(len(clips)))
        while pending:
            for mode in (False, True):
                batch = [i for i in pending if stamped[i] == mode]
                windows = [clips[i][seeks[i] : seeks[i] + window] for i in batch]
                decoded = self.token_ids(windows, mode) if batch else []
                begin = self.facts.timestamp_begin if mode else None
                skip = len(self.prompt(mode))
                for i, clip, ids in zip(batch, windows, decoded):
                    pieces, advance = window_segments(ids[skip:], begin, len(clip))
                    for start, end, text in pieces:
                        words = self.tokenizer.decode(text, skip_special_tokens=True).strip()
                        if words:
                            found[i].append(
                                ((seeks[i] + start) / rate, (seeks[i] + end) / rate, words)
                            )
                    seeks[i] += advance
            pending = [i for i in pending if seeks[i] < len(clips[i])]
        return found

    def transcribe_batch(self, clips: Sequence[np.ndarray]) -> list[str]:
        """Each clip's segments' texts joined with a space, as the served detokenizer joins."""
        return [" ".join(text for _, _, text in found) for found in self.segments(clips)]

    def transcribe(self, audio: np.ndarray) -> str:
        return self.transcribe_batch([audio])[0]
