"""What greedy Whisper decoding needs besides the weights: start, end and suppressed tokens.

Read from the tokenizer (special tokens by their text) and the model's own suppress lists, so a
fine-tuned model with another vocabulary gets its own ids.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from transformers import GenerationConfig

from modelrepo_gen.core.errors import UserError

MULTILINGUAL_VOCAB = 51865  # Whisper's rule: English-only vocabularies are one token smaller
START = "<|startoftranscript|>"
START_OF_PREVIOUS = "<|startofprev|>"  # the previous window's text comes after it
END = "<|endoftext|>"
NO_TIMESTAMPS = "<|notimestamps|>"
ENGLISH = "<|en|>"
TRANSCRIBE = "<|transcribe|>"
TRANSLATE = "<|translate|>"
NO_SPEECH = ("<|nospeech|>", "<|nocaptions|>")  # large-v3's name, and the older one
LANGUAGE_TOKEN = re.compile(r"<\|([a-z]{2,3})\|>")  # <|en|>, <|haw|>, <|yue|>


@dataclass(frozen=True)
class WhisperGenerationFacts:
    """Token ids for English transcription without timestamps, and the decoder's limits."""

    decoder_start_token_id: int
    eos_token_id: int
    no_timestamps_token_id: int
    prompt_ids: tuple[int, ...]  # the forced start: start [, English, transcribe], no timestamps
    max_target_positions: int
    is_multilingual: bool
    suppress_tokens: tuple[int, ...]
    begin_suppress_tokens: tuple[int, ...]  # suppressed at the first free step only
    # A multilingual model's language tokens (code -> id) and task tokens; empty for English-only.
    language_ids: dict[str, int] = field(default_factory=dict)
    task_ids: dict[str, int] = field(default_factory=dict)  # transcribe, translate -> id
    no_speech_token_id: int | None = None  # its probability after the start says "silence"
    start_of_previous_token_id: int | None = None

    @property
    def timestamp_begin(self) -> int:
        """The first timestamp token (<|0.00|>): the one after no-timestamps, in every Whisper."""
        return self.no_timestamps_token_id + 1

    def prompt(self, language: str | None, task: str) -> tuple[int, ...]:
        """The forced start for `language` (None: English-only) and `task`."""
        if not self.is_multilingual or language is None:
            return self.prompt_ids
        start, *_, last = self.prompt_ids
        return (start, self.language_ids[language], self.task_ids[task], last)

    def generation_config(self) -> GenerationConfig:
        """transformers' settings for greedy decoding with exactly these facts."""
        config = GenerationConfig(
            decoder_start_token_id=self.decoder_start_token_id,
            bos_token_id=self.eos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.eos_token_id,
            no_timestamps_token_id=self.no_timestamps_token_id,
            suppress_tokens=list(self.suppress_tokens),
            begin_suppress_tokens=list(self.begin_suppress_tokens),
            max_length=self.max_target_positions,
            is_multilingual=self.is_multilingual,
            do_sample=False,
            num_beams=1,
        )
        if self.is_multilingual:
            config.lang_to_id = {ENGLISH: self.prompt_ids[1]}
            config.task_to_id = {"transcribe": self.prompt_ids[2]}
        return config


def special_token_ids(tokenizer_json: Path) -> dict[str, int]:
    """The added (special) tokens of a tokenizers-library tokenizer.json, text -> id."""
    try:
        added = json.loads(tokenizer_json.read_text(encoding="utf-8"))["added_tokens"]
        return {token["content"]: int(token["id"]) for token in added}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{tokenizer_json} is not a readable tokenizer.json with added_tokens ({error})"
        ) from None


def generation_facts(
    tokenizer_json: Path,
    vocab_size: int,
    max_target_positions: int,
    suppress_tokens: list[int],
    begin_suppress_tokens: list[int],
) -> WhisperGenerationFacts:
    """The facts for a model with `vocab_size` tokens whose tokenizer is `tokenizer_json`."""
    ids = special_token_ids(tokenizer_json)
    multilingual = vocab_size >= MULTILINGUAL_VOCAB
    needed = [START, END, NO_TIMESTAMPS] + ([ENGLISH, TRANSCRIBE] if multilingual else [])
    missing = [token for token in needed if token not in ids]
    if missing:
        raise UserError(
            f"{tokenizer_json} lacks Whisper's special tokens {', '.join(missing)}; "
            "use the tokenizer.json that came with the model"
        )
    too_large = sorted(token for token in needed if ids[token] >= vocab_size)
    if too_large:
        raise UserError(
            f"{tokenizer_json} does not match the model: {', '.join(too_large)} lie outside its "
            f"{vocab_size} tokens; use the tokenizer.json that came with the model"
        )
    language_task = (ids[ENGLISH], ids[TRANSCRIBE]) if multilingual else ()
    languages, tasks = {}, {}
    if multilingual:  # the language tokens lie between start-of-transcript and the task tokens
        first, last = ids[START], min(ids[TRANSCRIBE], ids.get(TRANSLATE, ids[TRANSCRIBE]))
        for text, token in ids.items():
            match = LANGUAGE_TOKEN.fullmatch(text)
            if match and first < token < last:
                languages[match.group(1)] = token
        tasks = {"transcribe": ids[TRANSCRIBE]}
        if TRANSLATE in ids:
            tasks["translate"] = ids[TRANSLATE]
    return WhisperGenerationFacts(
        decoder_start_token_id=ids[START],
        eos_token_id=ids[END],
        no_timestamps_token_id=ids[NO_TIMESTAMPS],
        prompt_ids=(ids[START], *language_task, ids[NO_TIMESTAMPS]),
        max_target_positions=max_target_positions,
        is_multilingual=multilingual,
        suppress_tokens=tuple(suppress_tokens),
        begin_suppress_tokens=tuple(begin_suppress_tokens),
        language_ids=languages,
        task_ids=tasks,
        no_speech_token_id=next((ids[t] for t in NO_SPEECH if t in ids), None),
        start_of_previous_token_id=ids.get(START_OF_PREVIOUS),
    )
