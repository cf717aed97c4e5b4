"""From per-group scores back to per-input result files, in input order.

Groups mix frames of all inputs; the final tables are written per input file into
`<out_dir>/<stem>/`, next to that input's prepared files, with frames in the order the
preparation wrote them (the original tool's order) and every read accounted for from
the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from virnucpro.errors import FeatureError
from virnucpro.reads.ledger import read_ledger_table
from virnucpro.reads.preparation import PreparedFiles
from virnucpro.run.outputs import OutputPaths, write_outputs


@dataclass(frozen=True)
class InputResult:
    """The result files of one input and what they say."""

    prepared: PreparedFiles
    outputs: OutputPaths
    frames_scored: int


def _frame_order(prepared: PreparedFiles) -> list[str]:
    """Frame ids in the order preparation wrote them: the header lines of its protein
    file (ours, one id per header), read without parsing the sequences."""
    with open(prepared.protein) as handle:
        return [line[1:].rstrip("\n") for line in handle if line.startswith(">")]


def assemble_outputs(
    prepared: Sequence[PreparedFiles], scores: dict[str, np.ndarray]
) -> list[InputResult]:
    """Write each input's tables from the scores of all groups."""
    results = []
    for files in prepared:
        frame_ids = _frame_order(files)
        missing = [f for f in frame_ids if f not in scores]
        if missing:
            raise FeatureError(
                f"{files.protein}: {len(missing)} frame(s) have no score, e.g. {missing[0]}"
            )
        probabilities = (
            np.stack([scores[f] for f in frame_ids])
            if frame_ids
            else np.zeros((0, 2), dtype=np.float32)
        )
        outputs = write_outputs(
            files.protein.parent, frame_ids, probabilities, read_ledger_table(files.ledger)
        )
        results.append(InputResult(files, outputs, len(frame_ids)))
    return results
