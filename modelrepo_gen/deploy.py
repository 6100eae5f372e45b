"""Deploy a pipeline archive (written by the build's archive=PATH) as a model repository here.

    python -m modelrepo_gen.deploy asr.mrga model_repository
    python -m modelrepo_gen.deploy asr.mrga model_repository --key-file archive.key --force
    python -m modelrepo_gen.deploy asr.mrga model_repository --key-env ARCHIVE_KEY

Every byte of the archive is checked (and decrypted, with its key) before anything is written;
OUTPUT_DIR is replaced only with --force and only if this tool wrote it. Every user error ends
with one `error:` line and a non-zero exit.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from modelrepo_gen.repository.interrupts import stop_on_signals


def main(argv: Sequence[str] | None = None) -> int:
    stop_on_signals()  # before the imports below: Ctrl-C at any moment is one line
    from modelrepo_gen.archive.deploy import TARGETS, check_output, check_target, write_repository
    from modelrepo_gen.archive.keys import key_material
    from modelrepo_gen.archive.read import read_archive
    from modelrepo_gen.command_line import command_parser
    from modelrepo_gen.errors import UserError

    parser = command_parser("modelrepo_gen.deploy", __doc__)
    parser.add_argument("archive", help="the archive file the build wrote")
    parser.add_argument("output_dir", help="the model repository folder to write")
    parser.add_argument(
        "--target", choices=TARGETS, help="the machine it serves on (default: the archive's)"
    )
    parser.add_argument("--key-file", help="file holding the key of an encrypted archive")
    parser.add_argument("--key-env", help="environment variable holding that key")
    parser.add_argument("--force", action="store_true", help="replace an existing OUTPUT_DIR")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        archive_path = Path(args.archive).expanduser().absolute()
        output = Path(args.output_dir).expanduser().absolute()
        key = key_material(args.key_file, args.key_env, option="--key-")
        check_output(output, args.force)
        archive = read_archive(archive_path, key)
        target = check_target(archive, args.target, f"archive {archive_path}")
        write_repository(archive, output, args.force)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    print(
        f"{archive.index.get('pipeline')} for target={target} deployed to {output} from "
        f"{'an encrypted' if archive.encrypted else 'a plain'} archive "
        f"({len(archive.repository)} files, {time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
