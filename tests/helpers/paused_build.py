"""The real command line, paused at a chosen point of a build, so tests can kill it right there.

    python paused_build.py READY_FILE GO_FILE WHERE [override ...]

WHERE is where the build stops: `export` (the first network is exported into the staging
folder), `exchange` (the new repository has been swapped in, the replaced one not yet removed)
or `move_aside` (the atomic exchange is reported unsupported, and the fallback has moved the old
repository aside but not yet moved the new one in). At that point the build creates READY_FILE
and waits until GO_FILE exists. The pause wraps the build's own functions in this process only:
the product carries no test hook.
"""

from __future__ import annotations

import functools
import runpy
import sys
import time
from pathlib import Path

from modelrepo_gen.exporters import EXPORTERS, register_builtin_exporters
from modelrepo_gen.repository import swap


def pause_after(owner: object, name: str, ready: Path, go: Path) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        ready.touch()
        while not go.exists():
            time.sleep(0.02)
        return result

    setattr(owner, name, paused)


def unsupported(first: Path, second: Path) -> None:
    raise swap.ExchangeUnsupported("as on a file system without RENAME_EXCHANGE")


def main() -> None:
    ready, go, where, *overrides = sys.argv[1:]
    register_builtin_exporters()
    if where == "export":
        pause_after(EXPORTERS.get("onnx"), "export", Path(ready), Path(go))
    elif where == "exchange":
        pause_after(swap, "exchange", Path(ready), Path(go))
    elif where == "move_aside":
        swap.exchange = unsupported
        pause_after(swap, "move_aside", Path(ready), Path(go))
    else:
        raise SystemExit(f"unknown pause point {where!r}")
    sys.argv = ["modelrepo_gen", *overrides]
    runpy.run_module("modelrepo_gen", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
