"""CTranslate2's own Whisper on a clip, in-process: what the served `whisper_runtime=ctranslate2`
generator must answer with the same settings (its beam search is CTranslate2's, which differs
from transformers' in how it ranks finished hypotheses, so transformers is no reference for it).
The same log-mel front end the repository serves (WhisperLogMel); `transcribe` decodes one 30 s
window without timestamps, `segments` a long recording with them, window after window as
Whisper's transcribe seeks."""

from __future__ import annotations

from pathlib import Path

import ctranslate2
import numpy as np
import torch
from tokenizers import Tokenizer

from modelrepo_gen.components.networks.whisper_features import WhisperFeaturesConfig, WhisperLogMel
from modelrepo_gen.components.triton_python.whisper_fallback import Decoded, FallbackRules
from modelrepo_gen.components.triton_python.whisper_timestamps import window_segments
from modelrepo_gen.loaders.whisper_generation import WhisperGenerationFacts


class CTranslate2WhisperReference:
    def __init__(self, folder: Path, facts: WhisperGenerationFacts) -> None:
        # One thread: the server under test computes beside it.
        self.whisper = ctranslate2.models.Whisper(
            str(folder), device="cpu", compute_type="float32", intra_threads=1
        )
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        mels = self.whisper.n_mels  # 80, or 128 (large-v3)
        self.features = WhisperLogMel(WhisperFeaturesConfig(n_mels=mels)).eval()
        self.facts = facts

    def _features(self, clip: np.ndarray) -> ctranslate2.StorageView:
        audio = torch.from_numpy(np.asarray(clip, dtype=np.float32).reshape(1, -1))
        with torch.inference_mode():
            features = self.features(audio, torch.tensor([[clip.size]], dtype=torch.int32))
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy()))

    def language(self, clip: np.ndarray) -> str:
        """The language CTranslate2 detects on the clip, as a code."""
        ((token, _), *_) = self.whisper.detect_language(self._features(clip))[0]
        return token.strip("<|>")

    def transcribe(
        self,
        clip: np.ndarray,
        beam_size: int = 1,
        language: str | None = None,
        task: str = "transcribe",
    ) -> str:
        """One window without timestamps, with the temperature fallback."""
        ids = self._decode(clip, list(self.facts.prompt(language, task)), beam_size)
        return "" if ids is None else self._text(ids)

    def segments(
        self, audio: np.ndarray, beam_size: int = 1, condition: bool = False
    ) -> list[tuple[float, float, str]]:
        """(start s, end s, text) of each segment with text, English, decoded with timestamps;
        `condition`: each window's prompt starts with the text so far (<|startofprev|>)."""
        window, rate = WhisperFeaturesConfig().chunk_samples, WhisperFeaturesConfig().sample_rate
        prompt = list(self.facts.prompt("en" if self.facts.is_multilingual else None, "transcribe"))
        most = self.facts.max_target_positions // 2 - 1
        found, seek, previous = [], 0, []
        while seek < len(audio):
            clip = audio[seek : seek + window]
            context = [self.facts.start_of_previous_token_id, *previous[-most:]] if previous else []
            ids = self._decode(clip, context + prompt[:-1], beam_size)  # no no-timestamps token
            pieces, advance = window_segments(ids or [], self.facts.timestamp_begin, len(clip))
            for start, end, text in pieces:
                words = self._text(text)
                if words:
                    found.append(((seek + start) / rate, (seek + end) / rate, words))
                if condition:
                    previous += text
            seek += advance if ids is not None else len(clip)
        return found

    def _text(self, ids: list[int]) -> str:
        words = [t for t in ids if t < self.facts.timestamp_begin]
        return self.tokenizer.decode(words, skip_special_tokens=True).strip()

    def _decode(self, clip: np.ndarray, prompt: list[int], beam_size: int) -> list[int] | None:
        """The window's tokens, greedy or by beams; None: the window is silent (Whisper's rule
        with the default thresholds). A window whose decoding the temperature fallback would
        sample again is refused: CTranslate2's sampling is not reproducible, so no answer of
        the server could be compared with it."""
        rules = FallbackRules()
        (result,) = self.whisper.generate(
            self._features(clip),
            [prompt],
            beam_size=beam_size,
            max_length=self.facts.max_target_positions,
            suppress_tokens=list(self.facts.suppress_tokens),
            suppress_blank=True,
            return_scores=True,
            return_no_speech_prob=True,
        )
        ids = [t for t in result.sequences_ids[0] if t != self.facts.eos_token_id]
        decoded = Decoded(ids, result.scores[0] * len(ids) / (len(ids) + 1), result.no_speech_prob)
        assert not rules.needs_fallback(decoded, self._text(ids)), (
            f"the fallback samples this window again ({decoded}): compare on another one"
        )
        return None if rules.is_silent(decoded) else ids

    def greedy_text(self, clip: np.ndarray, language: str | None = None) -> str:
        """One window decoded greedily, whatever the fallback would do with it."""
        (result,) = self.whisper.generate(
            self._features(clip),
            [list(self.facts.prompt(language, "transcribe"))],
            max_length=self.facts.max_target_positions,
            suppress_tokens=list(self.facts.suppress_tokens),
            suppress_blank=True,
            beam_size=1,
            return_no_speech_prob=True,  # as served: it changes how the prompt is run
        )
        return self._text([t for t in result.sequences_ids[0] if t != self.facts.eos_token_id])
