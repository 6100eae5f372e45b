"""The five LibriVox utterances of Debian's pocketsphinx-testdata, with their transcripts."""

from __future__ import annotations

from pathlib import Path

from modelrepo_gen.core.errors import UserError

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox_utterances(folder: Path = LIBRIVOX) -> list[tuple[Path, str]]:
    """(wav file, reference text) pairs in file-name order, from the folder's `transcription`."""
    transcription = folder / "transcription"
    if not transcription.is_file():
        raise UserError(
            f"no speech samples under {folder}: install Debian's pocketsphinx-testdata "
            "(make speech)"
        )
    texts = {}
    for line in transcription.read_text().splitlines():
        words, _, utterance = line.rpartition("(")  # "<s> words </s> (utterance-id)"
        if words.strip():
            text = words.replace("<s>", " ").replace("</s>", " ")
            texts[utterance.strip(" )")] = " ".join(text.split())
    return [
        (folder / f"{name}.wav", text)
        for name, text in sorted(texts.items())
        if (folder / f"{name}.wav").is_file()
    ]
