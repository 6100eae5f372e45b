"""Sealed archives: the plain archive encrypted with AES-256-GCM (authenticated encryption).

    MAGIC | format (1 byte) | scrypt log2(n), r, p (3 bytes) | salt (16) | nonce (12) | sealed

The key is derived from the user's key material with scrypt and a random salt, so the same key
material never gives the same key twice and a guessed key costs a guesser real time. The whole
header is authenticated with the data: any changed byte, anywhere, fails the tag check.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from modelrepo_gen.core.errors import UserError

MAGIC = b"MODELREPO_GEN-SEALED\n"
FORMAT = 1
SCRYPT = (15, 8, 1)  # log2(n), r, p: about 32 MiB and a tenth of a second per key
SALT_BYTES, NONCE_BYTES = 16, 12
HEADER_BYTES = len(MAGIC) + 1 + 3 + SALT_BYTES + NONCE_BYTES


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def seal(plain: bytes, key_material: bytes) -> bytes:
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    header = MAGIC + bytes([FORMAT, *SCRYPT]) + salt + nonce
    return header + AESGCM(_key(key_material, salt, SCRYPT)).encrypt(nonce, plain, header)


def unseal(data: bytes, key_material: bytes, where: str) -> bytes:
    """The plain archive inside `data`; one clear error for a wrong key or any changed byte."""
    if len(data) < HEADER_BYTES + 16:
        raise UserError(f"{where} is truncated: it is shorter than an encrypted archive's header")
    version = data[len(MAGIC)]
    if version > FORMAT:
        raise UserError(
            f"{where} was encrypted by a newer modelrepo_gen (format {version}; this version "
            f"reads format {FORMAT}): upgrade modelrepo_gen to deploy it"
        )
    start = len(MAGIC) + 1
    log_n, r, p = data[start : start + 3]
    salt = data[start + 3 : start + 3 + SALT_BYTES]
    nonce = data[start + 3 + SALT_BYTES : HEADER_BYTES]
    if (log_n, r, p) != SCRYPT:
        # Only this module writes the header; other values mean it was changed (or forged to
        # make the key derivation cost hours).
        raise UserError(f"{where} is damaged: its key derivation settings were changed")
    try:
        return AESGCM(_key(key_material, salt, SCRYPT)).decrypt(
            nonce, data[HEADER_BYTES:], data[:HEADER_BYTES]
        )
    except InvalidTag:
        raise UserError(
            f"cannot decrypt {where}: wrong key, or the archive was changed or truncated "
            "after it was written; nothing was deployed"
        ) from None


def _key(key_material: bytes, salt: bytes, settings: tuple[int, int, int]) -> bytes:
    log_n, r, p = settings
    return Scrypt(salt=salt, length=32, n=1 << log_n, r=r, p=p).derive(key_material)
