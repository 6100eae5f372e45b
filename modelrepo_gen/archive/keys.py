"""Key material for sealed archives, from a file or an environment variable.

The key itself never appears in an error, a log line, the archive or its manifest: errors name
only the file or the variable it came from.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelrepo_gen.core.errors import UserError


def key_material(key_file: str | None, key_env: str | None, option: str = "") -> bytes | None:
    """The key from `key_file` or the variable `key_env` (at most one), or None for neither.

    A trailing newline is not part of the key (`echo secret > key` writes one), in a file or
    a variable alike.
    `option` is the prefix of the option names in errors: "--key-" or "archive_key_".
    """
    if key_file and key_env:
        raise UserError(f"pass either {option}file or {option}env, not both")
    if key_file:
        path = Path(key_file).expanduser()
        try:
            material = path.read_bytes().rstrip(b"\r\n")
        except OSError as error:
            raise UserError(f"cannot read key file {path}: {error.strerror or error}") from None
        if not material:
            raise UserError(f"key file {path} is empty")
        return material
    if key_env:
        value = os.environ.get(key_env)
        if value is None:
            raise UserError(f"environment variable {key_env} (the archive key) is not set")
        if not value:
            raise UserError(f"environment variable {key_env} (the archive key) is empty")
        return value.encode().rstrip(b"\r\n")  # as a key file's: `$(cat archive.key)` or not
    return None
