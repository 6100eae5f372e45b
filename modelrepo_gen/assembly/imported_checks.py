"""Checks of a network exported elsewhere, where there is no PyTorch module to compare with.

At every parity shape its outputs must be finite, and each row of a batch of mixed lengths must
equal what the row gives alone, trimmed to its own valid length: padding (0 ids, 0 mask) must
not change a valid position's output. Figures are recorded like parity figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelrepo_gen.assembly.parity import ParityResult, compare
from modelrepo_gen.core.build_plan import ModelUnit
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters import EXPORTERS


def check_imported(
    unit: ModelUnit,
    artifact: Path,
    shapes: Sequence[tuple[int, float, int | None]],
    seed: int,
) -> list[ParityResult]:
    export = unit.export
    assert export is not None and export.mask_input is not None
    run = EXPORTERS.get(export.exporter).load(artifact, export.inputs)
    names = [spec.name for spec in export.outputs]
    mask = [spec.name for spec in export.inputs].index(export.mask_input)
    results = []
    for i, (batch, seconds, tokens) in enumerate(shapes):
        arrays = [t.numpy() for t in export.make_inputs(batch, seconds, seed + 1000 + i, tokens)]
        together = run(arrays)
        for name, output in zip(names, together, strict=True):
            if not np.all(np.isfinite(output)):
                raise UserError(
                    f"imported model '{unit.name}': output {name} holds NaN or infinite values "
                    f"at batch {batch}, {tokens} tokens"
                )
        worst = {name: (0.0, 0.0) for name in names}
        for row in range(batch):
            valid = int(arrays[mask][row].sum())
            alone = run([a[row : row + 1, :valid] for a in arrays])
            for name, whole, single in zip(names, together, alone, strict=True):
                part = whole[row : row + 1]
                if name in export.sized_like:
                    part = np.take(part, np.arange(valid), axis=export.sized_like[name][1])
                error, relative = compare(part, single, name)
                if not relative <= export.tolerance:
                    raise UserError(
                        f"imported model '{unit.name}' is not batch-invariant: output {name} of "
                        f"row {row} ({valid} tokens) differs by {relative:.3g} (relative) from "
                        f"the row run alone, tolerance {export.tolerance:g}"
                    )
                worst[name] = max(worst[name], (error, relative), key=lambda e: e[1])
        results.extend(
            ParityResult(batch, seconds, name, error, relative, tokens)
            for name, (error, relative) in worst.items()
        )
    return results
