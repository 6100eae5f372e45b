"""Folder names for the variants of a multirun sweep: flat, readable, deterministic.

Hydra's own `override_dirname` pastes values in verbatim, so `model.checkpoint=/data/a.pt`
becomes nested folders. Here a value that is not a plain word (a path, a list, quotes, spaces)
is written as a short readable form plus a hash of the whole value; plain values stay as they
are, so `pipeline=asr_quartznet,precision=fp16` keeps its familiar name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from omegaconf import OmegaConf

RESOLVER = "variant_dirname"
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,40}")
PLAIN_KEY = re.compile(r"[+~]*[A-Za-z0-9_.@-]+")  # config keys, with Hydra's +/~ prefixes
UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
READABLE_CHARS = 24
MAX_NAME = 200  # well under the 255-byte limit of common filesystems
EMPTY_NAME = "default"  # a sweep without any naming override


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _safe(text: str, plain: re.Pattern[str] = PLAIN_VALUE) -> str:
    """`text` when it is a plain word, else a readable part of it plus a hash of all of it."""
    if plain.fullmatch(text) and text not in (".", ".."):
        return text
    tail = re.split(r"[/\\]", text.rstrip("/\\"))[-1]  # a path reads best by its file name
    readable = UNSAFE.sub("_", tail).strip("._")[:READABLE_CHARS]
    return f"{readable}-{_digest(text)}" if readable else _digest(text)


def override_key(line: str) -> str:
    """The config key an override line sets, as Hydra's exclude_keys name it."""
    return line.split("=", 1)[0].lstrip("+~")


def variant_dirname(overrides: Iterable[str], exclude_keys: Iterable[str] = ()) -> str:
    """One path component naming a variant by its overrides (sorted, as Hydra sorts them)."""
    excluded = set(exclude_keys)
    parts = []
    for line in sorted(str(o) for o in overrides):
        if override_key(line) in excluded:
            continue
        key, sep, value = line.partition("=")
        safe_key = _safe(key, PLAIN_KEY)
        parts.append(f"{safe_key}={_safe(value)}" if sep else safe_key)
    name = ",".join(parts) or EMPTY_NAME
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME - 9]}-{_digest(name)}"
    return name


def register_resolver() -> None:
    """`${variant_dirname:${hydra.overrides.task},[keys to leave out]}` in conf/config.yaml."""
    OmegaConf.register_new_resolver(
        RESOLVER,
        lambda overrides, exclude=(): variant_dirname(overrides, exclude),
        replace=True,
    )
