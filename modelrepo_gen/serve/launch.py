"""What the bundled tritonserver needs to run: its files, environment and process limits.

The server is launched the way pytriton's own launcher does it (see PLATFORM.md): the bundled
``bin/``, ``backends/`` and ``caches/`` are copied into a private work folder together with the
python backend stub built for the running Python, and the binary runs with the vendored
libraries plus this Python's LIBDIR on ``LD_LIBRARY_PATH`` and this environment's ``bin/`` first
on ``PATH`` (so python-backend models import this environment's packages).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.processes import HOST, die_with_parent, pid_alive

EXIT_TIMEOUT_S = 10  # passed as --exit-timeout-secs; SIGKILL follows a few seconds later
WORK_DIR_PREFIX = "modelrepo_gen_triton_"
OWNER_FILE = "owner.pid"  # the Python process that started the server
# tritonserver 2.51's HTTP front end copies a form-encoded request body onto its thread's stack
# (twice), and thread stacks default to RLIMIT_STACK: with 8 MiB a 4.5 MB body kills the server.
# 1 GiB of stack (address space, touched only by such bodies) moves that to about 530 MB.
DEFAULT_STACK_LIMIT_MIB = 1024


def _pytriton_dir() -> Path | None:
    spec = importlib.util.find_spec("pytriton")  # located, not imported: pytriton is heavy
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bundled_triton_root() -> Path:
    """Folder of the tritonserver bundled in nvidia-pytriton (bin/, backends/, caches/, stubs)."""
    pytriton = _pytriton_dir()
    if pytriton is None:
        raise UserError(
            "the Triton server binary is not installed: pip install nvidia-pytriton==0.7.0"
        )
    return pytriton / "tritonserver"


def check_triton_root(root: Path) -> None:
    if not (root / "bin" / "tritonserver").is_file():
        raise UserError(
            f"the Triton server binary is missing: no '{root / 'bin' / 'tritonserver'}'; "
            "install it with pip install nvidia-pytriton==0.7.0"
        )
    if not _stub(root).is_file():
        raise UserError(
            f"the bundled Triton server has no python backend stub for Python {_py_version()} "
            f"(under '{root / 'python_backend_stubs'}'); use a Python it ships a stub for"
        )


def _py_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _stub(root: Path) -> Path:
    return root / "python_backend_stubs" / _py_version() / "triton_python_backend_stub"


def _link_or_copy(source: str, target: str) -> str:
    # A hard link costs no disk and no time; the 29 MB copy is the fallback across filesystems.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def sweep_stale_work_dirs() -> None:
    """Remove work folders left by Python processes that were killed without stop()."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not pid_alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


def make_work_dir(triton_root: Path) -> Path:
    """A private copy (hard links) of the server, its backends and the python stub."""
    sweep_stale_work_dirs()
    work_dir = Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX))
    for part in ("bin", "backends", "caches"):
        shutil.copytree(triton_root / part, work_dir / part, copy_function=_link_or_copy)
    _link_or_copy(
        str(_stub(triton_root)),
        str(work_dir / "backends" / "python" / "triton_python_backend_stub"),
    )
    (work_dir / OWNER_FILE).write_text(str(os.getpid()))
    return work_dir


def server_command(
    work_dir: Path,
    repository: Path,
    ports: dict[str, int],
    models: Sequence[str] | None,
    extra_args: Sequence[str],
) -> list[str]:
    return [
        str(work_dir / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={work_dir / 'backends'}",
        f"--cache-directory={work_dir / 'caches'}",
        "--backend-config=python,shm-default-byte-size=4194304",
        "--backend-config=python,shm-growth-byte-size=1048576",
        "--model-control-mode=explicit",
        *[f"--load-model={name}" for name in models or ["*"]],
        # Keep serving when a model fails, so the repository index can say why.
        "--exit-on-error=false",
        f"--http-address={HOST}",
        f"--grpc-address={HOST}",
        f"--metrics-address={HOST}",
        f"--http-port={ports['http']}",
        f"--grpc-port={ports['grpc']}",
        f"--metrics-port={ports['metrics']}",
        f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        *extra_args,
    ]


def server_environment(python: Path | None = None) -> dict[str, str]:
    """The server's environment; its python models run in `python`'s environment (default:
    this one's). That Python must be of this one's version (the stub is chosen for it)."""
    env = dict(os.environ)
    # Without this Python's LIBDIR the stub can load the system's libpython against this
    # Python's stdlib and fail ('_thread.RLock' object has no attribute '_recursion_count').
    pytriton = _pytriton_dir()
    libs_dir = pytriton.parent / "nvidia_pytriton.libs" if pytriton else None
    libs = [str(p) for p in (libs_dir, sysconfig.get_config_var("LIBDIR")) if p]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    # The stub takes its python (and so its site-packages) from PATH: this environment's.
    python_bin = (python or Path(sys.executable)).absolute().parent
    env["PATH"] = os.pathsep.join([str(python_bin), env.get("PATH", "")])
    return env


def child_setup(stack_limit_mib: int | None) -> Callable[[], None]:
    """What the forked child does before exec: die with us, and get a deep thread stack."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    wanted = soft
    if stack_limit_mib is not None:
        wanted = stack_limit_mib * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft > wanted:
            wanted = soft  # never lower what the user gave (unlimited gives threads 2-8 MiB)

    def setup() -> None:
        die_with_parent()
        if wanted != soft:
            resource.setrlimit(resource.RLIMIT_STACK, (wanted, hard))

    return setup
