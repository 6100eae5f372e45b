"""What a checkpoint path holds, told before loading it: a folder, an empty file, text, a zip.

Every message names the path and says what was expected, so a wrong path is fixed at once.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from modelrepo_gen.core.errors import UserError

EXPECTED = "expected a file written by torch.save holding a state dict"
SAVE_WEIGHTS = "save only the weights: torch.save(model.state_dict(), PATH)"
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL = 0x80  # first byte of a pickle (protocol 2+)
# torch's legacy (non-zip) format: a pickle that starts with torch's magic number.
LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f920 6aa85019".replace(" ", ""))


def check_checkpoint_file(path: Path, label: str = "model.checkpoint") -> None:
    """Raise UserError unless `path` is a readable file that looks like a torch.save file."""
    if path.is_dir():
        raise UserError(f"{label} {path} is a folder, {EXPECTED}")
    if not path.exists():
        raise UserError(f"{label}: no such file: {path}")
    if not path.is_file():
        raise UserError(f"{label} {path} is not a regular file, {EXPECTED}")
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError as error:
        raise UserError(f"{label} {path} cannot be read: {error.strerror or error}") from None
    if not head:
        raise UserError(f"{label} {path} is empty (0 bytes), {EXPECTED}")
    if head.startswith(ZIP_MAGIC):
        _check_torch_zip(path, label)
    elif not head.startswith(LEGACY_MAGIC):
        raise UserError(
            f"{label} {path} is not a PyTorch checkpoint ({_looks_like(head)}); {EXPECTED}"
        )


def _check_torch_zip(path: Path, label: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(
            f"{label} {path} is a damaged zip archive, likely a truncated PyTorch checkpoint "
            f"({error}); {EXPECTED}"
        ) from None
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        raise UserError(
            f"{label} {path} is a zip archive but not a PyTorch checkpoint (no data.pkl inside; "
            f"it holds {shown or 'nothing'}); {EXPECTED}"
        )


def _looks_like(head: bytes) -> str:
    if head[0] == PICKLE_PROTOCOL:
        return "it is a plain Python pickle"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "it is a tar archive, such as a .nemo file"
    if head.startswith(b"\x89HDF"):
        return "it is an HDF5 file"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 30:
        return "it looks like a safetensors file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # a character cut at the end of the sample is fine
            return f"it starts with bytes {head[:8].hex(' ')}"
    return "it looks like a text file"


def refused_pickle(error: Exception) -> str | None:
    """Why torch.load(weights_only=True) refused a file, in one line; None for other failures.

    Never torch's own message: it advises retrying with weights_only=False, which runs any
    code the file carries, the one thing not to do with a file from elsewhere.
    """
    text = str(error)
    if "Weights only load failed" not in text:
        return None
    needed = re.search(r"GLOBAL ([\w.]+)", text)
    return (
        f"it holds pickled Python objects{f' ({needed.group(1)})' if needed else ''}, not plain "
        "tensors, and unpickling them could run code"
    )


def describe_load_failure(error: Exception) -> str:
    """A one-line reason for a torch.load failure on a file that passed the checks above."""
    text = str(error).strip()
    if refused := refused_pickle(error):
        return f"{refused}, so it was not loaded; {SAVE_WEIGHTS}"
    # torch's first sentence says what broke; the rest is advice for torch users.
    first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else "unexpected end of file"
    return f"it is truncated or damaged ({first}); {EXPECTED}"
