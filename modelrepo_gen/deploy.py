"""Deploy a pipeline archive (written by the build's archive=PATH) as a model repository here.

    python -m modelrepo_gen.deploy asr.mrga model_repository
    python -m modelrepo_gen.deploy asr.mrga model_repository --key-file archive.key --force
    python -m modelrepo_gen.deploy asr.mrga model_repository --key-env ARCHIVE_KEY
    python -m modelrepo_gen.deploy asr.mrga model_repository --kubernetes k8s

Every byte of the archive is checked (and decrypted, with its key) before anything is written;
OUTPUT_DIR is replaced only with --force and only if this tool wrote it. Every user error ends
with one `error:` line and a non-zero exit.

With --kubernetes DIR it also writes the manifests that serve the archive in a cluster with
NVIDIA's Triton image (modelrepo_gen/archive/kubernetes.py); the options are checked, and the
archive read, before anything is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from modelrepo_gen.repository.interrupts import stop_on_signals


def main(argv: Sequence[str] | None = None) -> int:
    stop_on_signals()  # before the imports below: Ctrl-C at any moment is one line
    from modelrepo_gen.archive.keys import key_material
    from modelrepo_gen.archive.kubernetes import render_kubernetes, settings_for
    from modelrepo_gen.archive.read import read_archive
    from modelrepo_gen.archive.renderings import BACKENDS, TARGETS, served_repository
    from modelrepo_gen.command_line import command_parser
    from modelrepo_gen.core.errors import UserError
    from modelrepo_gen.deployment.deployed_files import (
        check_output,
        deployed_files,
        write_repository,
    )

    parser = command_parser("modelrepo_gen.deploy", __doc__)
    parser.add_argument("archive", help="the archive file the build wrote")
    parser.add_argument("output_dir", help="the model repository folder to write")
    parser.add_argument(
        "--target", choices=TARGETS, help="the machine it serves on (default: the archive's)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="how the networks are served (default: as built); tensorrt: TensorRT engines "
        "made here from the ONNX networks, on this machine's GPU (implies --target gpu)",
    )
    parser.add_argument("--key-file", help="file holding the key of an encrypted archive")
    parser.add_argument("--key-env", help="environment variable holding that key")
    parser.add_argument(
        "--python-env",
        default=f"{sys.version_info.major}.{sys.version_info.minor}",
        metavar="X.Y|none",
        help="pack the python models' packages for the serving Triton's Python X.Y into the "
        "repository, so the server needs nothing installed (default: this Python's version, "
        "the bundled server's); none: the repository as built",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing OUTPUT_DIR")
    _kubernetes_arguments(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        archive_path = Path(args.archive).expanduser().absolute()
        output = Path(args.output_dir).expanduser().absolute()
        key = key_material(args.key_file, args.key_env, option="--key-")
        check_output(output, args.force)
        manifests = _manifest_dir(args, output)
        archive = read_archive(archive_path, key)
        where = f"archive {archive_path}"
        served = served_repository(archive, args.target, args.backend, where)
        if served.engines:
            # Only here: making engines needs torch and TensorRT, deploying without them not.
            from modelrepo_gen.deployment.engines import check_engines_can_be_made, with_engines

            check_engines_can_be_made(where)
        settings = None
        if manifests:
            settings = settings_for(
                str(archive.index.get("pipeline")),
                served.target,
                served.backend,
                archive_path.name,
                archive.encrypted,
                **{option: getattr(args, option) for option in KUBERNETES_OPTIONS},
            )
        files = served.files
        if served.engines:
            files = with_engines(files, served.engines, archive.repository, archive.members, where)
        files = deployed_files(
            files, served.python_packages, archive.wheels, args.python_env, where
        )
        write_repository(files, served.empty_folders, output, args.force)
        written = render_kubernetes(settings, manifests, args.force) if settings else []
    except UserError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    print(
        f"{archive.index.get('pipeline')} for target={served.target} ({served.backend}) "
        f"deployed to {output} from "
        f"{'an encrypted' if archive.encrypted else 'a plain'} archive "
        f"({len(files)} files; python models' packages: {environment(args.python_env, files)}; "
        f"{time.perf_counter() - started:.1f} s)"
    )
    if settings:
        print(
            f"Kubernetes manifests for {settings.name} written to {manifests} "
            f"({len(written)} files)"
        )
    return 0


def environment(python: str, files: dict[str, bytes]) -> str:
    from modelrepo_gen.deployment.python_env import ENV_FILE

    if ENV_FILE in files:
        return f"packed for Python {python}"
    return "none needed" if python != "none" else "the serving Python's own"


# The --kubernetes options, by their settings' names; unset (None): the settings' default.
KUBERNETES_OPTIONS = {
    "name": (str, "NAME", "name of the objects (default: the pipeline's, '_' as '-')"),
    "triton_image": (str, "IMAGE:TAG", "the serving image"),
    "deploy_image": (
        str,
        "IMAGE:TAG",
        "the init container's: any image with the modelrepo_gen wheel installed",
    ),
    "archive_claim": (
        str,
        "CLAIM",
        "PersistentVolumeClaim holding the archive (default: NAME-archives)",
    ),
    "storage_uri": (
        str,
        "URI",
        "KServe: where the deployed repository is (default: pvc://CLAIM/NAME)",
    ),
    "triton_python": (
        str,
        "X.Y",
        "the serving image's Python: the init container packs the packages for it",
    ),
    "startup_seconds": (int, "SECONDS", "how long the models may take to load"),
    "cpu": (str, "QUANTITY", "CPU request"),
    "cpu_limit": (str, "QUANTITY", "CPU limit"),
    "memory": (str, "QUANTITY", "memory request"),
    "memory_limit": (str, "QUANTITY", "memory limit"),
    "min_replicas": (int, "N", "fewest pods the autoscaler keeps"),
    "max_replicas": (int, "N", "most pods the autoscaler runs"),
    "cpu_utilization": (int, "PERCENT", "CPU use, %% of the request, the autoscaler aims at"),
}


def _kubernetes_arguments(parser: argparse.ArgumentParser) -> None:
    from dataclasses import MISSING, fields

    from modelrepo_gen.archive.kubernetes import KubernetesSettings

    group = parser.add_argument_group("kubernetes (with --kubernetes DIR)")
    group.add_argument(
        "--kubernetes",
        metavar="DIR",
        help="also write the manifests that serve the archive with Triton in a cluster",
    )
    defaults = {field.name: field.default for field in fields(KubernetesSettings)}
    for option, (kind, metavar, help_text) in KUBERNETES_OPTIONS.items():
        default = defaults.get(option, MISSING)
        shown = "" if default is MISSING else f" (default: {default})"
        group.add_argument(
            f"--{option.replace('_', '-')}", type=kind, metavar=metavar, help=help_text + shown
        )


def _manifest_dir(args: argparse.Namespace, output: Path) -> Path | None:
    """The --kubernetes folder, checked; one of its options without it is an error."""
    from modelrepo_gen.archive.kubernetes import check_manifest_dir
    from modelrepo_gen.core.errors import UserError

    if args.kubernetes is None:
        given = [option for option in KUBERNETES_OPTIONS if getattr(args, option) is not None]
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} needs --kubernetes DIR")
        return None
    manifests = Path(args.kubernetes).expanduser().absolute()
    check_manifest_dir(manifests, args.force, output)
    return manifests


if __name__ == "__main__":
    sys.exit(main())
