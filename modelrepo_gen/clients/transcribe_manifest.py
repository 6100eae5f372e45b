"""NeMo-style JSON-lines manifests, and the word error rate of transcripts against them."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.core.errors import UserError


@dataclass(frozen=True)
class ManifestEntry:
    audio_path: Path
    text: str | None
    duration: float | None
    source: str | None = None  # manifest:line it came from


def check_audio_files(entries: list[ManifestEntry]) -> None:
    """Every listed audio file exists, checked before the first request is sent."""
    for entry in entries:
        if not entry.audio_path.is_file():
            problem = "is not a file" if entry.audio_path.exists() else "does not exist"
            where = f" (listed at {entry.source})" if entry.source else ""
            raise UserError(f"audio file '{entry.audio_path}' {problem}{where}")


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """A NeMo-style JSON-lines manifest; ``audio_filepath`` relative to the manifest's folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserError(f"cannot read manifest '{path}': {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 text (byte 0x{error.object[error.start]:02x}); a manifest "
            'is UTF-8 JSON lines, one object with an "audio_filepath" per line'
        ) from None
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise UserError(f"{path}:{number}: not a JSON object: {error}") from None
        if not isinstance(record, dict) or not isinstance(record.get("audio_filepath"), str):
            raise UserError(f'{path}:{number}: needs an "audio_filepath" string')
        if not record["audio_filepath"].strip():
            raise UserError(f'{path}:{number}: "audio_filepath" is empty')
        audio = Path(record["audio_filepath"])
        text = record.get("text")
        entries.append(
            ManifestEntry(
                audio_path=audio if audio.is_absolute() else path.parent / audio,
                text=str(text) if text is not None else None,
                duration=record.get("duration"),
                source=f"{path}:{number}",
            )
        )
    if not entries:
        raise UserError(f"manifest '{path}' lists no audio")
    return entries


# Titles as spoken, as Whisper's English normalizer writes them: a model writing "Mr." and a
# reference spelling "mister" say the same word.
SPOKEN_TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalize_text(text: str) -> str:
    """Lowercase letters, apostrophes and single spaces (what a character-CTC model emits),
    with abbreviated titles spelled out."""
    letters = re.sub(r"[^\w']|[\d_]", " ", text.lower())
    return " ".join(SPOKEN_TITLES.get(word, word) for word in letters.split())


@dataclass(frozen=True)
class WordErrors:
    errors: int
    reference_words: int

    @property
    def rate(self) -> float | None:
        return self.errors / self.reference_words if self.reference_words else None


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors:
    """Corpus-level word errors after normalising both sides."""
    import jiwer

    refs = [normalize_text(t) for t in references]
    hyps = [normalize_text(t) for t in hypotheses]
    measures = jiwer.process_words(refs, hyps)
    errors = measures.substitutions + measures.deletions + measures.insertions
    return WordErrors(errors=errors, reference_words=sum(len(r.split()) for r in refs))
