"""Normalized sentences -> the symbol ids an acoustic model was trained with.

Two encodings, chosen by the symbol set's `encoding` (conf/tts_symbols/):
- `characters`: one id per character of the set (pad, special, punctuation, letters, in that
  order; NVIDIA's Tacotron 2 / FastPitch convention), unknown characters dropped.
- `piper_phonemes`: espeak-ng IPA phonemes through a Piper voice's phoneme_id_map, as
  piper-phonemize does: clause by clause with the clause's punctuation kept, NFD-decomposed,
  then BOS '^', every phoneme followed by the pad '_', EOS '$'.
Plain functions, no imports from modelrepo_gen: copied beside the front-end's model.py.
"""

import re
import subprocess
import unicodedata

CLAUSE = re.compile(r"([^,;:.!?]+)([,;:.!?]*)")
LANGUAGE_SWITCH = re.compile(r"\([a-z-]+\)")  # espeak-ng marks words it reads in another language
PAD, BOS, EOS = "_", "^", "$"


def character_table(symbols: dict) -> dict[str, int]:
    """Character -> id: the pad first, then special, punctuation and letters."""
    ordered = [symbols["pad"], *symbols["special"], *symbols["punctuation"], *symbols["letters"]]
    return {symbol: index for index, symbol in enumerate(ordered)}


def character_ids(sentence: str, table: dict[str, int], lowercase: bool) -> list[int]:
    text = sentence.lower() if lowercase else sentence
    return [table[c] for c in text if c in table]


def espeak(text: str, command: str, voice: str) -> str:
    """IPA phonemes of one clause from espeak-ng (its lines, one per clause it finds, joined)."""
    done = subprocess.run(
        [command, "-q", "--ipa", "-v", voice, "--stdin"],
        # Through a UTF-8 pipe, not the command line: the stub's locale may be ASCII, and a
        # command line cannot hold every character (Zoë's café failed there).
        input=text,
        capture_output=True,
        encoding="utf-8",
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"espeak-ng failed: {done.stderr.strip() or done.returncode}")
    lines = (LANGUAGE_SWITCH.sub("", line).strip() for line in done.stdout.splitlines())
    return " ".join(line for line in lines if line)


def phonemize(sentence: str, command: str, voice: str) -> str:
    """The sentence's phonemes with its punctuation, clause by clause like piper-phonemize:
    "Hello, world." -> "həlˈoʊ, wˈɜːld."."""
    parts = []
    for text, punctuation in CLAUSE.findall(sentence):
        phonemes = espeak(text.strip(), command, voice) if text.strip() else ""
        mark = punctuation[:1]
        if phonemes or mark:
            parts.append(phonemes + mark)
    return " ".join(parts)


def phoneme_ids(phonemes: str, id_map: dict[str, list[int]]) -> list[int]:
    """Piper's ids: BOS, pad, then each known phoneme followed by the pad, EOS."""
    ids = [*id_map[BOS], *id_map[PAD]]
    for phoneme in unicodedata.normalize("NFD", phonemes):
        if phoneme in id_map:
            ids += [*id_map[phoneme], *id_map[PAD]]
    return ids + id_map[EOS]


class SymbolEncoder:
    """One symbol set's encoder: sentence -> ids."""

    def __init__(self, symbols: dict, phoneme_id_map: dict | None = None):
        self.encoding = symbols["encoding"]
        if self.encoding == "characters":
            self.table = character_table(symbols)
            self.lowercase = bool(symbols["lowercase"])
        elif self.encoding == "piper_phonemes":
            self.id_map = phoneme_id_map
            self.command = symbols["espeak_command"]
            self.voice = symbols["espeak_voice"]
        else:
            raise ValueError(f"unknown encoding {self.encoding!r}")

    def encode(self, sentence: str) -> list[int]:
        if self.encoding == "characters":
            return character_ids(sentence, self.table, self.lowercase)
        return phoneme_ids(phonemize(sentence, self.command, self.voice), self.id_map)
