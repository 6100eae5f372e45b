"""Writing repositories safely: only our own folders are replaced, output follows the umask,
write errors end in one line, and output_dir cannot take the user's own folders with it."""

from __future__ import annotations

import errno
import os
import py_compile
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.util import cache_from_source
from pathlib import Path

import pytest
from helpers.cli_runs import CliRun, run_many
from helpers.project import ROOT, compose_config

from modelrepo_gen.assembly import run as build
from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.publish import cannot_write

SMALL = ["model=quartznet_mini"]


def cli(*args: str, cwd: Path = ROOT, umask: int = 0o022, home: Path | None = None):
    env = dict(os.environ, **({"HOME": str(home)} if home else {}))
    return subprocess.run(
        [sys.executable, "-m", "modelrepo_gen", *SMALL, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.umask(umask),
    )


def one_error_line(result, returncode: int = 2) -> str:
    assert result.returncode == returncode, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    return errors[0]


def listing(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under `root`."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in root.rglob("*")
    }


def test_force_refuses_a_folder_that_merely_holds_a_manifest_json(tmp_path) -> None:
    app = tmp_path / "web_app"
    (app / "assets").mkdir(parents=True)
    (app / "manifest.json").write_text('{"name": "PWA"}')
    (app / "index.html").write_text("hi")
    before = listing(app)
    line = one_error_line(cli(f"output_dir={app}", "force=true"))
    assert "not a repository built by modelrepo_gen" in line
    assert "assets/, index.html, manifest.json" in line
    assert listing(app) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web_app"]


def test_force_refuses_a_repository_holding_files_it_did_not_write(tmp_path) -> None:
    repo = tmp_path / "repo"
    build_repository(compose_config(SMALL), repo)
    (repo / "notes.txt").write_text("mine")
    edited = repo / "asr_quartznet" / "config.pbtxt"
    edited.write_text(edited.read_text() + "# tuned by hand\n")
    (repo / "asr_quartznet" / "1" / "data").symlink_to("/etc")
    before = listing(repo)
    with pytest.raises(UserError) as refused:
        build_repository(compose_config([*SMALL, "force=true", "seed=3"]), repo)
    message = str(refused.value)
    assert "notes.txt (added)" in message
    assert "asr_quartznet/config.pbtxt (changed since the build)" in message
    assert "asr_quartznet/1/data (a link)" in message
    assert listing(repo) == before

    # Once they are moved out, it is ours again: a missing file loses nobody anything, and the
    # bytecode Triton's python backend caches beside our model.py files is derived from ours.
    for path in (repo / "notes.txt", edited, repo / "asr_quartznet" / "1" / "data"):
        path.unlink()
    for model in repo.glob("*/1/model.py"):
        py_compile.compile(str(model), cfile=cache_from_source(str(model)), doraise=True)
    assert list(repo.glob("*/1/__pycache__/model.*.pyc"))
    build_repository(compose_config([*SMALL, "force=true", "seed=3"]), repo)
    assert edited.is_file() and not list(repo.glob("*/1/__pycache__"))


USERS_FOLDERS = [
    ("", "output_dir is empty"),
    (".", "is or contains the current directory"),
    ("..", "is or contains the current directory"),
    ("/", "is or contains the current directory"),
    ("'~'", "is or contains home"),
    ("{tmp}/users", "is or contains home"),
]


@pytest.fixture(scope="module")
def users_folder_refusals(tmp_path_factory) -> list[tuple[subprocess.CompletedProcess, Path, dict]]:
    """Each row run from its own work folder beside its own home (HOME), all in one interpreter
    (tests/helpers/cli_runs.py): (result, root, listing of root before)."""
    runs, roots = [], []
    for output_dir, _ in USERS_FOLDERS:
        root = tmp_path_factory.mktemp("users_folders")
        work, home = root / "work", root / "users" / "me"
        for folder in (work, home):
            folder.mkdir(parents=True)
            (folder / "keep.txt").write_text("keep")
        roots.append((root, listing(root)))
        args = [*SMALL, f"output_dir={output_dir.format(tmp=root)}", "force=true"]
        runs.append(CliRun(args, cwd=str(work), env={"HOME": str(home)}))
    return [(result, *root) for result, root in zip(run_many(runs, ROOT), roots, strict=True)]


@pytest.mark.parametrize("row", range(len(USERS_FOLDERS)), ids=[e for _, e in USERS_FOLDERS])
def test_output_dir_that_would_replace_the_users_folders_is_refused(
    users_folder_refusals, row: int
) -> None:
    result, root, before = users_folder_refusals[row]
    assert USERS_FOLDERS[row][1] in one_error_line(result)
    assert listing(root) == before


@pytest.mark.parametrize(
    ("umask", "folders", "files"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)]
)
def test_published_repository_follows_the_umask(tmp_path, umask, folders, files) -> None:
    repo = tmp_path / "repo"
    result = cli(f"output_dir={repo}", umask=umask)
    assert result.returncode == 0, result.stderr
    paths = [repo, *repo.rglob("*")]
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in paths}
    expected = {name: folders if (tmp_path / name).is_dir() else files for name in modes}
    assert modes == expected


def test_output_errors_end_in_one_line_naming_path_and_cause(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    cases = {
        blocker / "repo": f"cannot write {blocker / 'repo'}: {blocker} is a file, not a folder",
        Path("/proc/modelrepo_gen_test/repo"): (
            "cannot write /proc/modelrepo_gen_test: No such file or directory"
        ),
        Path("/sys/modelrepo_gen_test/repo"): (
            "cannot write /sys/modelrepo_gen_test: Operation not permitted"
        ),
    }
    for output_dir, expected in cases.items():
        assert one_error_line(cli(f"output_dir={output_dir}")) == f"error: {expected}"
        assert not output_dir.parent.exists() or output_dir.parent == blocker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_disk_full_mid_build_is_one_line_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    def write_manifest_to_a_full_disk(root: Path, *args) -> None:
        fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC, as on a full disk
        try:
            os.write(fd, b"{}")
        finally:
            os.close(fd)

    monkeypatch.setattr(build, "write_manifest", write_manifest_to_a_full_disk)
    repo = tmp_path / "deeper" / "repo"
    with pytest.raises(UserError, match=f"^cannot write {repo}: No space left on device$"):
        build_repository(compose_config(SMALL), repo)
    assert list(tmp_path.iterdir()) == []


def test_cannot_write_names_the_users_path_never_a_hidden_one(tmp_path) -> None:
    repo = tmp_path / "repo"
    staging = tmp_path / ".repo.building-abcd1234" / "m" / "1" / "model.onnx"
    for filename, named in [
        (staging, repo),
        (repo / "m" / "config.pbtxt", repo / "m" / "config.pbtxt"),
        (tmp_path, tmp_path),
        (None, repo),
    ]:
        error = OSError(errno.EACCES, os.strerror(errno.EACCES), filename)
        assert str(cannot_write(error, repo)) == f"cannot write {named}: Permission denied"
    assert cannot_write(OSError(errno.EACCES, "x", "/etc/elsewhere"), repo) is None


def test_cannot_write_names_the_destination_of_a_copy(tmp_path) -> None:
    # As shutil.copyfile raises it on a full disk: the source (anywhere) first, then the
    # destination, the file that could not be written.
    repo = tmp_path / "repo"
    source = Path(sys.prefix) / "lib" / "voice.onnx"
    staging = tmp_path / ".repo.building-abcd1234" / "tts" / "1" / "voice.onnx"
    full = errno.ENOSPC, os.strerror(errno.ENOSPC)
    for destination, named in [(staging, repo), (repo / "m" / "x.py", repo / "m" / "x.py")]:
        error = OSError(*full, str(source), None, str(destination))
        assert str(cannot_write(error, repo)) == f"cannot write {named}: No space left on device"
    assert cannot_write(OSError(*full, str(source), None, "/etc/elsewhere"), repo) is None


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Callable[[int], Path]]:
    """Mounts a tmpfs of a given size (a real disk that fills up); always unmounted."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
        mounted.append(disk)
        return disk

    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command to make a small real disk")
    yield mount
    for disk in mounted:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_real_disk_is_one_line_and_leaves_it_empty(tmp_path, tiny_disk) -> None:
    # A disk with room for the first exported network only: the next file, copied by shutil
    # (whose error names the source first), finds it full.
    measured = tmp_path / "measured"
    build_repository(compose_config(SMALL), measured)
    first = measured / "asr_quartznet_feature_extractor" / "1" / "model.onnx"
    page = os.sysconf("SC_PAGE_SIZE")
    disk = tiny_disk(-(-first.stat().st_size // page) * page)
    repo = disk / "repo"  # its hidden staging folder is made beside it, on the same disk
    line = one_error_line(cli(f"output_dir={repo}"))
    assert line == f"error: cannot write {repo}: No space left on device"
    assert listing(disk) == {}


def test_a_failed_build_removes_the_parent_folders_it_created(tmp_path) -> None:
    repo = tmp_path / "a" / "b" / "repo"
    with pytest.raises(UserError, match="parity check failed"):
        build_repository(compose_config([*SMALL, "precision.parity_tolerance=0.0"]), repo)
    assert list(tmp_path.iterdir()) == []
