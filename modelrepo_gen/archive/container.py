"""The plain archive: a canonical tar.gz that standard tools can list and extract.

Canonical means the same files always give the same bytes: members sorted by name, regular
files only (their folders are implied), no owner, time or mode beyond 0644, gzip without a name
or time. That makes a plain archive byte-identical across builds of the same inputs, and lets a
reader prove that not one byte was changed: every member's SHA-256 is in the index (the first
member), the gzip stream's own CRC covers the tar, and the tar must equal its canonical form
(so even padding and headers are checked).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zlib
from pathlib import PurePosixPath
from typing import Any

from modelrepo_gen.core.errors import UserError

INDEX = "modelrepo_archive.json"
# Written here, not by the gzip module (whose OS byte changed between Python versions): deflate,
# an extra field, time 0, "fastest" compression, OS unknown; the extra field ("MG", 32 bytes) is
# the SHA-256 of everything after the header, so that even bits the decompressor ignores (the
# padding of the last deflate block) cannot change unnoticed. Standard tools skip extra fields.
GZIP_START = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x04\xff" + struct.pack("<H", 36) + b"MG\x20\x00"
GZIP_HEADER_BYTES = len(GZIP_START) + 32
COMPRESS_LEVEL = 1  # the networks' weights barely compress further; level 6 takes 6x longer


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """The canonical tar of `files` (name -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files, key=lambda n: (n != INDEX, n)):
            tar.addfile(_member(name, len(files[name])), io.BytesIO(files[name]))
    return buffer.getvalue()


def pack(index: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """The archive of `files`, its index first, with every member's hash added to the index."""
    index = {**index, "files": {name: _sha256(data) for name, data in sorted(files.items())}}
    members = {INDEX: (json.dumps(index, indent=2, sort_keys=True) + "\n").encode(), **files}
    return gzip_framed(tar_bytes(members))


def unpack(data: bytes, where: str, newest_format: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The index and files of a plain archive, every byte checked; `where` names it in errors."""
    if not data:
        raise UserError(f"{where} is empty")
    if not data.startswith(GZIP_START[:3]):
        raise UserError(f"{where} is not a modelrepo_gen archive")
    if data[12:14] != GZIP_START[12:14]:
        raise UserError(f"{where} is not a modelrepo_gen archive (a gzip file it did not write)")
    if len(data) <= GZIP_HEADER_BYTES:
        raise UserError(f"{where} is truncated: it ends inside its header")
    if not data.startswith(GZIP_START):
        raise damaged(where, "its gzip header was changed")
    if (
        hashlib.sha256(data[GZIP_HEADER_BYTES:]).digest()
        != data[len(GZIP_START) : GZIP_HEADER_BYTES]
    ):
        raise _changed_or_truncated(data, where)
    inflate = zlib.decompressobj(wbits=31)
    try:
        tar = inflate.decompress(data) + inflate.flush()
    except zlib.error as error:
        raise damaged(where, f"its compressed data is corrupt ({error})") from None
    if not inflate.eof:
        raise UserError(f"{where} is truncated: it ends in the middle of its data")
    if inflate.unused_data:
        raise damaged(where, f"{len(inflate.unused_data)} bytes follow its end")
    members = _read_tar(tar, where)
    raw_index = members.pop(INDEX, None)
    index = _read_index(raw_index, where, newest_format)
    listed = index.get("files")
    if not isinstance(listed, dict) or set(listed) != set(members):
        raise damaged(where, "its members differ from its index")
    for name, data_ in members.items():
        if _sha256(data_) != listed[name]:
            raise damaged(where, f"{name} does not match its SHA-256 in the index")
    assert raw_index is not None  # _read_index refused an archive without one
    if tar != tar_bytes({INDEX: raw_index, **members}):
        raise damaged(where, "its tar headers or padding were changed")
    return index, members


def gzip_framed(data: bytes) -> bytes:
    """`data` in the archive's gzip framing (the header above, one deflate stream)."""
    deflate = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    rest = deflate.compress(data) + deflate.flush()
    rest += struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return GZIP_START + hashlib.sha256(rest).digest() + rest


def _changed_or_truncated(data: bytes, where: str) -> UserError:
    inflate = zlib.decompressobj(wbits=31)
    try:
        inflate.decompress(data)
    except zlib.error:
        return damaged(where, "its data does not match its checksum")
    if not inflate.eof:
        return UserError(f"{where} is truncated: it ends in the middle of its data")
    return damaged(where, "its data does not match its checksum")


def damaged(where: str, why: str) -> UserError:
    return UserError(f"{where} is damaged: {why}; nothing was deployed")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_tar(tar: bytes, where: str) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for info in archive:
                _check_member(info, where)
                if info.name in members:
                    raise damaged(where, f"it holds {info.name} twice")
                extracted = archive.extractfile(info)
                assert extracted is not None  # a regular file
                members[info.name] = extracted.read()
    except tarfile.TarError as error:
        raise damaged(where, f"its tar data is corrupt ({error})") from None
    return members


def check_relative(name: object, where: str) -> None:
    """A plain relative path, that cannot lead outside the folder it is written into."""
    path = PurePosixPath(str(name))
    if (
        not isinstance(name, str)
        or not name
        or path.is_absolute()
        or ".." in path.parts
        or name != path.as_posix()
    ):
        raise UserError(f"{where} is unsafe: member '{name}' points outside the archive")


def _check_member(info: tarfile.TarInfo, where: str) -> None:
    """Only plain files at plain relative paths: nothing may land outside the output folder."""
    check_relative(info.name, where)
    if not info.isreg():
        kind = "a link" if info.issym() or info.islnk() else "not a plain file"
        raise UserError(f"{where} is unsafe: member '{info.name}' is {kind}")


def _read_index(raw: bytes | None, where: str, newest_format: int) -> dict[str, Any]:
    if raw is None:
        raise UserError(f"{where} is not a modelrepo_gen archive: it has no {INDEX}")
    try:
        index = json.loads(raw)
    except ValueError:
        raise damaged(where, f"its {INDEX} is not valid JSON") from None
    version = index.get("format") if isinstance(index, dict) else None
    if not isinstance(version, int):
        raise damaged(where, f"its {INDEX} has no format version")
    if version > newest_format:
        raise UserError(
            f"{where} was written by a newer modelrepo_gen (archive format {version}; this "
            f"version reads format {newest_format} and older): upgrade modelrepo_gen to deploy it"
        )
    return index
