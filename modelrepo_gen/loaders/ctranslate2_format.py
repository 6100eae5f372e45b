"""Reads a CTranslate2 ``model.bin`` (binary version 6) without the ctranslate2 package.

Layout, all little-endian: u32 version, string spec name, u32 spec revision, u32 variable
count, then per variable: string name, u8 rank, rank x u32 dims, u8 dtype id, u32 byte count,
raw bytes; then u32 alias count and (alias, target) string pairs. A string is a u16 length
(counting its NUL), the UTF-8 bytes and a NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from modelrepo_gen.core.errors import UserError

BINARY_VERSION = 6
# CTranslate2's DataType ids.
DTYPES = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}
MAX_RANK = 8  # a larger rank means the file is not what it claims


@dataclass(frozen=True)
class CTranslate2Model:
    """The variables of a model.bin by name (aliases resolved to their targets' tensors)."""

    spec: str
    revision: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str]


class _Truncated(Exception):
    def __init__(self, needed: int) -> None:
        self.needed = needed  # bytes the file would need to hold what it announced


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def take(self, size: int) -> memoryview:
        if self.offset + size > len(self.data):
            raise _Truncated(self.offset + size)
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        if not raw.endswith(b"\0"):
            raise ValueError("a name is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def read_ctranslate2(path: Path) -> CTranslate2Model:
    """Every variable of a CTranslate2 model.bin; UserError if it is not one or is cut short."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path} cannot be read: {error.strerror or error}") from None
    reader = _Reader(data)
    what = "the header"
    try:
        version = reader.unpack("I")
        if version != BINARY_VERSION:
            raise ValueError(_text_or_version(data, version))
        spec = reader.string()
        revision = reader.unpack("I")
        variables: dict[str, torch.Tensor] = {}
        for index in range(reader.unpack("I")):
            what = f"variable {index + 1}"
            name = reader.string()
            what = f"variable {name!r}"
            variables[name] = _read_tensor(reader)
        what = "the aliases"
        aliases = {}
        for _ in range(reader.unpack("I")):
            alias, target = reader.string(), reader.string()
            if target not in variables:
                raise ValueError(f"alias {alias!r} names the unknown variable {target!r}")
            aliases[alias] = target
    except _Truncated as cut:
        raise UserError(
            f"{path} is truncated: it ends inside {what} ({len(data)} bytes, at least "
            f"{cut.needed} needed); copy or convert the model again"
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path} is not a CTranslate2 model.bin ({what}: {error}); "
            "expected a model converted with ct2-transformers-converter"
        ) from None
    if reader.offset != len(data):
        raise UserError(
            f"{path} has {len(data) - reader.offset} unexpected bytes after its last entry; "
            "it is damaged or not a CTranslate2 model.bin"
        )
    return CTranslate2Model(spec, revision, variables, aliases)


def _read_tensor(reader: _Reader) -> torch.Tensor:
    rank = reader.unpack("B")
    if rank > MAX_RANK:
        raise ValueError(f"rank {rank}")
    shape = [reader.unpack("I") for _ in range(rank)]
    dtype_id = reader.unpack("B")
    if dtype_id not in DTYPES:
        raise ValueError(f"unknown dtype id {dtype_id}")
    dtype = DTYPES[dtype_id]
    size = reader.unpack("I")
    count = 1
    for dim in shape:
        count *= dim
    if size != count * dtype.itemsize:
        raise ValueError(f"{size} bytes for shape {shape} of {dtype}")
    raw = bytearray(reader.take(size))  # a writable copy: torch.frombuffer shares it
    if not raw:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(raw, dtype=dtype).reshape(shape)


def _text_or_version(data: bytes, version: int) -> str:
    try:
        head = data[:256].decode("utf-8")
    except UnicodeDecodeError:
        head = ""
    if head and all(c.isprintable() or c.isspace() for c in head):
        return "it is a text file"
    return f"binary version {version}, not {BINARY_VERSION} as CTranslate2 3.x and 4.x write"
