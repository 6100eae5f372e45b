"""A checkpoint that is not a state dict is named with what it is and what was expected.

Each row makes one kind of wrong file; the build must end with one `error:` line (exit 2)
naming the path, and write nothing. The rows share one interpreter (tests/helpers/cli_runs.py).
"""

from __future__ import annotations

import os
import pickle
import shlex
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers.cli_runs import run_many
from helpers.pickled_code import RunsCode
from helpers.project import ROOT

SMALL = ["model=quartznet_mini"]
EXPECTED = "expected a file written by torch.save holding a state dict"


def _torch_file(path: Path, legacy: bool = False) -> bytes:
    torch.save({"w": torch.zeros(64, 64)}, path, _use_new_zipfile_serialization=not legacy)
    return path.read_bytes()


def missing(path: Path) -> Path:
    return path


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text(path: Path) -> Path:
    path.write_text("learning rate 0.01, 100 epochs\nthe weights are elsewhere\n")
    return path


def binary(path: Path) -> Path:
    path.write_bytes(bytes(range(7, 250)) * 3)
    return path


def foreign_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights/readme.txt", "not torch")
    return path


def truncated_zip(path: Path) -> Path:
    data = _torch_file(path)
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_legacy(path: Path) -> Path:
    data = _torch_file(path, legacy=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def whole_module(path: Path) -> Path:
    torch.save(torch.nn.Linear(2, 2), path)  # the object, not its state dict
    return path


def plain_pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    return path


def ran_marker(path: Path) -> Path:
    return path.with_name(path.name + ".ran")


def pickled_code(path: Path) -> Path:
    torch.save(
        {"w": torch.zeros(2), "x": RunsCode(f"touch {shlex.quote(str(ran_marker(path)))}")}, path
    )
    return path


def not_a_dict(path: Path) -> Path:
    torch.save([torch.zeros(2)], path)
    return path


def unreadable(path: Path) -> Path:
    # Root reads any file whatever its mode; the kernel still refuses to read a process's
    # memory at address 0, so /proc/self/mem is a real regular file that cannot be read.
    return Path("/proc/self/mem")


ROWS: list[tuple[Callable[[Path], Path], str]] = [
    (folder, f"is a folder, {EXPECTED}"),
    (missing, "model.checkpoint: no such file: "),
    (empty, f"is empty (0 bytes), {EXPECTED}"),
    (text, f"is not a PyTorch checkpoint (it looks like a text file); {EXPECTED}"),
    (binary, "is not a PyTorch checkpoint (it starts with bytes 07 08 09"),
    (foreign_zip, "is a zip archive but not a PyTorch checkpoint (no data.pkl inside; it holds"),
    (truncated_zip, "is a damaged zip archive, likely a truncated PyTorch checkpoint"),
    (truncated_legacy, "is not a readable PyTorch checkpoint: it is truncated or damaged"),
    (whole_module, "pickled Python objects (torch.nn.modules.linear.Linear), not plain tensors"),
    (
        pickled_code,
        "it holds pickled Python objects (posix.system), not plain tensors, and unpickling them "
        "could run code, so it was not loaded; save only the weights",
    ),
    (plain_pickle, "is not a PyTorch checkpoint (it is a plain Python pickle)"),
    (not_a_dict, "holds no state dict"),
    (unreadable, "cannot be read: Input/output error"),
]


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> list[tuple[subprocess.CompletedProcess, Path, Path]]:
    root = tmp_path_factory.mktemp("checkpoints")
    paths = [make(root / f"{make.__name__}_{i}.pt") for i, (make, _) in enumerate(ROWS)]
    outs = [root / f"out{i}" / "repo" for i in range(len(ROWS))]
    runs = [[*SMALL, f"model.checkpoint={p}", f"output_dir={o}"] for p, o in zip(paths, outs)]
    return list(zip(run_many(runs, ROOT), paths, outs, strict=True))


@pytest.mark.parametrize("row", range(len(ROWS)), ids=[make.__name__ for make, _ in ROWS])
def test_bad_checkpoint_is_one_clear_line(outcomes, row: int) -> None:
    result, path, out = outcomes[row]
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: model.checkpoint"), result.stderr
    assert ROWS[row][1] in lines[0]
    if not str(path).startswith("/proc/"):  # /proc/self is another process there
        assert str(path.resolve()) in lines[0]
    assert not out.parent.exists()


def test_code_pickled_in_a_checkpoint_never_runs(outcomes) -> None:
    result, path, _ = outcomes[[make for make, _ in ROWS].index(pickled_code)]
    assert "weights_only=False" not in result.stderr  # torch's advice: run the file's code
    assert not ran_marker(path).exists()
    torch.load(path, weights_only=False)  # as that advice would: the code does run
    assert ran_marker(path).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_checkpoint_without_read_permission(tmp_path: Path) -> None:
    path = tmp_path / "locked.pt"
    _torch_file(path)
    path.chmod(0)
    (result,) = run_many([[*SMALL, f"model.checkpoint={path}", "dry_run=true"]], ROOT)
    assert result.returncode == 2 and "cannot be read: Permission denied" in result.stderr
