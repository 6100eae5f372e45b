"""`${nemo_tts:PART,ACOUSTIC,VOCODER,CHANGES...}`: a part of pipeline tts_nemo read from its two
.nemo files (ACOUSTIC: a FastPitchModel, VOCODER: a HifiGanModel).

PART is acoustic or vocoder (the network's settings; CHANGES, config nodes, are merged over
them in order, so read settings stay overridable), symbols (the front-end's symbol set, from
the FastPitch tokenizer) or sample_rate. Every part checks both files' roles and that the
vocoder takes the mel the acoustic model makes, so a mismatched pair stops at composition.
`python -m modelrepo_gen pipeline=tts_nemo model.acoustic=F.nemo model.vocoder=H.nemo
--cfg job --resolve` prints what was read.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from modelrepo_gen.config.nemo_resolver import merged_over
from modelrepo_gen.core.errors import UserError

PARTS = ("acoustic", "vocoder", "symbols", "sample_rate")
ACOUSTIC_LABEL, VOCODER_LABEL = "model.acoustic", "model.vocoder"


def _identity(path: str) -> tuple:
    """A file as the cache knows it: a rewritten file is read again."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError:  # read_nemo says what is wrong with it
        return (str(resolved), None, None)
    return (str(resolved), stat.st_size, stat.st_mtime_ns)


def _read(part: str, acoustic_path: str, vocoder_path: str) -> Any:
    return _read_files(
        part, acoustic_path, vocoder_path, _identity(acoustic_path), _identity(vocoder_path)
    )


@functools.lru_cache(maxsize=16)
def _read_files(part: str, acoustic_path: str, vocoder_path: str, *identities: tuple) -> Any:
    """One part, read once per process: OmegaConf calls the resolver at every access (a
    composition asked a dozen times), and an IPA vocabulary is built from a dictionary of
    ~130k lines. Callers copy what it returns (OmegaConf.create)."""
    # Imported here: composing other pipelines never loads torch for this.
    from modelrepo_gen.loaders import nemo_tts_config
    from modelrepo_gen.loaders.nemo_archive import read_nemo

    acoustic = read_nemo(acoustic_path, ACOUSTIC_LABEL)
    vocoder = read_nemo(vocoder_path, VOCODER_LABEL)
    nemo_tts_config.check_role(acoustic, "acoustic")
    nemo_tts_config.check_role(vocoder, "vocoder")
    nemo_tts_config.check_pair(acoustic, vocoder)
    if part == "sample_rate":
        return nemo_tts_config.mel_facts(vocoder)["sample rate"]
    if part == "vocoder":
        settings = nemo_tts_config.hifigan(vocoder)
        return {"component": "nemo_hifigan", "label": VOCODER_LABEL, **settings}
    if part == "symbols":
        symbols = nemo_tts_config.symbols(acoustic)
        if symbols["encoding"] == "nemo_ipa":
            symbols["tokens"] = _ipa_tokens(acoustic, symbols)
        return symbols
    symbols = _read_files("symbols", acoustic_path, vocoder_path, *identities)  # its tokens
    settings = nemo_tts_config.fastpitch(acoustic, len(symbols["tokens"]))
    return {"component": "nemo_fastpitch", "label": ACOUSTIC_LABEL, **settings}


def _ipa_tokens(archive: Any, symbols: dict) -> list[str]:
    """An IPA tokenizer's vocabulary, built from the dictionary in the archive as NeMo does."""
    from modelrepo_gen.components.triton_python.nemo_ipa import IpaG2p, ipa_tokens

    def text(key: str) -> str | None:
        if not symbols[key]:
            return None
        path = archive.member(symbols[key], f"text_tokenizer.g2p.{key}")
        return path.read_text(encoding="utf-8")

    g2p = IpaG2p(text("dictionary") or "", text("heteronyms"), symbols["g2p"])
    return ipa_tokens(g2p, symbols["tokenizer"])


def nemo_tts_part(part: str, acoustic: Any, vocoder: Any, *changes: Any) -> Any:
    if part not in PARTS:
        raise UserError(f"${{nemo_tts:{part},...}}: the part must be one of {', '.join(PARTS)}")
    for label, path in ((ACOUSTIC_LABEL, acoustic), (VOCODER_LABEL, vocoder)):
        if not path:
            kind = "FastPitch" if label == ACOUSTIC_LABEL else "HiFi-GAN"
            raise UserError(f"{label} must name the {kind} .nemo file to import")
    read = _read(part, str(acoustic), str(vocoder))
    if part == "sample_rate":
        return read
    return merged_over(read, changes)


def register_nemo_tts_resolver() -> None:
    OmegaConf.register_new_resolver("nemo_tts", nemo_tts_part, replace=True)
