"""Result files: the original's two tables, bit-compatible, plus per-read accounting.

Original formats (SPEC §5), which users' scripts parse:
- `prediction_results.txt`: one row per kept frame, `Sequence_ID Prediction score1
  score2` (tab-separated); score1 = P(others), score2 = P(virus). Prediction is
  `virus` only when P(virus) > P(others): the original took `torch.max(outputs, 1)`,
  which returns index 0 (`others`) on a tie. Scores are written as the original wrote
  them, `str()` of each float32 of a NumPy row: the shortest text that reads back as
  that float32, e.g. `0.26894143` and `0.7310586`.
- `prediction_results_highestscore.csv` (tab-separated despite the name): one row per
  chunk with a kept frame, `Modified_ID Is_Virus`, Modified_ID = frame id minus its
  2-character frame suffix, Is_Virus = max(score2) ≥ max(score1) over the chunk's
  frames, rows sorted by Modified_ID. (The original compares the scores it read back
  from its text file; a float32's shortest text orders and ties exactly as the float32
  does, so comparing the float32 values gives the same answer.)

The original says nothing about chunks without a kept frame and gives no verdict per
read, so we add:
- `read_verdicts.tsv`: every input read, with `virus` if any of its chunks has
  Is_Virus True, `others` if at least one chunk was classified and none is virus, and
  `unclassified` if no chunk got a score; `max_p_virus` is the highest P(virus) of
  any of its frames, for ranking reads, not for the verdict (a chunk is virus only when
  its best P(virus) reaches its best P(others), so 0.51 can be `others`);
- `unclassified.tsv`: every chunk that got no score, with the reason from the ledger.
Each of these four tables is also written as Parquet next to the text file; every file
is written to a temporary name and renamed, so a file that exists is complete.

The ledger (from read preparation, `virnucpro.reads.ledger`) has one row per chunk, given as a
DataFrame or as `LedgerRow`s, with at least `read_id`, `read_length`, `chunk_id`,
`chunk_length`, `kept_frames` (comma-separated frame ids) and `status` (`ok`, or why
the chunk has no frame to classify); a read without any chunk has one row with an
empty `chunk_id` (it counts 0 chunks and is listed in unclassified.tsv).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from virnucpro.atomic_write import write_parquet, write_text
from virnucpro.errors import FeatureError
from virnucpro.reads.ledger import COLUMNS, LedgerRow
from virnucpro.reads.translation import FRAME_SUFFIXES, STATUS_OK

PREDICTIONS_FILE = "prediction_results.txt"
HIGHEST_SCORE_FILE = "prediction_results_highestscore.csv"
READ_VERDICTS_FILE = "read_verdicts.tsv"
UNCLASSIFIED_FILE = "unclassified.tsv"

LEDGER_COLUMNS = ("read_id", "read_length", "chunk_id", "chunk_length", "kept_frames", "status")
VERDICT_COLUMNS = (
    "read_id",
    "chunks",
    "chunks_classified",
    "virus_chunks",
    "max_p_virus",
    "verdict",
)
FRAME_SUFFIX_LENGTH = len(FRAME_SUFFIXES[0])  # "F1" … "R3"


@dataclass(frozen=True)
class WrittenTable:
    text: Path
    parquet: Path


@dataclass(frozen=True)
class OutputPaths:
    predictions: WrittenTable
    highest_scores: WrittenTable
    read_verdicts: WrittenTable
    unclassified: WrittenTable


def score_texts(probabilities: np.ndarray) -> list[str]:
    """The original's rendering of float32 probabilities: `str()` of each NumPy float32
    (shortest round-trip text). NaN (a read without any score) is left empty."""
    values = np.asarray(probabilities, dtype=np.float32)
    texts = list(map(str, values))
    for missing in np.flatnonzero(np.isnan(values)):
        texts[missing] = ""
    return texts


def ledger_table(ledger: pd.DataFrame | Iterable[LedgerRow]) -> pd.DataFrame:
    """The ledger as a DataFrame: given as one, or as `LedgerRow`s."""
    if isinstance(ledger, pd.DataFrame):
        table = ledger
    else:
        table = pd.DataFrame(list(ledger), columns=list(COLUMNS))
    missing = [c for c in LEDGER_COLUMNS if c not in table.columns]
    if missing:
        raise FeatureError(f"ledger lacks column(s) {', '.join(missing)}")
    return table


def prediction_table(frame_ids: Sequence[str], probabilities: np.ndarray) -> pd.DataFrame:
    """One row per frame: Sequence_ID, Prediction, score1 (P others), score2 (P virus)."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.shape != (len(frame_ids), 2):
        raise FeatureError(
            f"{len(frame_ids)} frame ids but probabilities of shape {probabilities.shape}"
        )
    if len(set(frame_ids)) != len(frame_ids):
        raise FeatureError("frame ids given to the output writer are not unique")
    virus = probabilities[:, 1] > probabilities[:, 0]  # tie → others, like torch.max
    return pd.DataFrame(
        {
            "Sequence_ID": pd.Series(list(frame_ids), dtype=object),
            "Prediction": np.where(virus, "virus", "others"),
            "score1": probabilities[:, 0],
            "score2": probabilities[:, 1],
        }
    )


def chunk_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per chunk: Modified_ID, Is_Virus (max score2 ≥ max score1), sorted by Modified_ID."""
    chunk_ids = predictions["Sequence_ID"].str[:-FRAME_SUFFIX_LENGTH]
    best = predictions.groupby(chunk_ids, sort=False)[["score1", "score2"]].max()
    table = pd.DataFrame(
        {"Modified_ID": best.index.astype(object), "Is_Virus": best["score2"] >= best["score1"]}
    )
    return table.sort_values("Modified_ID", kind="stable").reset_index(drop=True)


def read_verdict_table(ledger: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per read in ledger order; see the module docstring for the verdict rule.

    Vectorised (joins and one groupby), so millions of reads take seconds."""
    _check_ledger_matches(ledger, predictions)
    chunks = chunk_table(predictions).set_index("Modified_ID")["Is_Virus"]
    frame_chunk = predictions["Sequence_ID"].str[:-FRAME_SUFFIX_LENGTH]
    best_virus = predictions["score2"].groupby(frame_chunk.to_numpy()).max()
    classified = (ledger["status"] == STATUS_OK).to_numpy()
    per_chunk = pd.DataFrame(
        {
            "read_id": ledger["read_id"].to_numpy(dtype=object),
            "chunks": (ledger["chunk_id"] != "").to_numpy(),
            "chunks_classified": classified,
            "virus_chunks": ledger["chunk_id"].map(chunks).fillna(False).to_numpy(bool)
            & classified,
            "max_p_virus": ledger["chunk_id"].map(best_virus).to_numpy(np.float32),
        }
    )
    table = per_chunk.groupby("read_id", sort=False).agg(
        chunks=("chunks", "sum"),
        chunks_classified=("chunks_classified", "sum"),
        virus_chunks=("virus_chunks", "sum"),
        max_p_virus=("max_p_virus", "max"),
    )
    table["verdict"] = np.select(
        [table["chunks_classified"] == 0, table["virus_chunks"] > 0],
        ["unclassified", "virus"],
        default="others",
    )
    table = table.reset_index().astype(
        {"chunks": int, "chunks_classified": int, "virus_chunks": int, "max_p_virus": np.float32}
    )
    return table[list(VERDICT_COLUMNS)]


def unclassified_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """Every chunk that got no score, with the reason the ledger gives."""
    rows = ledger[ledger["status"] != STATUS_OK]
    return pd.DataFrame(
        {
            "read_id": rows["read_id"].to_numpy(dtype=object),
            "read_length": rows["read_length"].to_numpy(),
            "chunk_id": rows["chunk_id"].to_numpy(dtype=object),
            "chunk_length": rows["chunk_length"].to_numpy(),
            "reason": rows["status"].to_numpy(dtype=object),
        }
    )


def write_outputs(
    out_dir: Path,
    frame_ids: Sequence[str],
    probabilities: np.ndarray,
    ledger: pd.DataFrame | Iterable[LedgerRow],
) -> OutputPaths:
    """Write all four tables (text + Parquet) into `out_dir`; return their paths."""
    ledger = ledger_table(ledger)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = prediction_table(frame_ids, probabilities)
    verdicts = read_verdict_table(ledger, predictions)
    return OutputPaths(
        predictions=_write(predictions, out_dir / PREDICTIONS_FILE, ["score1", "score2"]),
        highest_scores=_write(chunk_table(predictions), out_dir / HIGHEST_SCORE_FILE, []),
        read_verdicts=_write(verdicts, out_dir / READ_VERDICTS_FILE, ["max_p_virus"]),
        unclassified=_write(unclassified_table(ledger), out_dir / UNCLASSIFIED_FILE, []),
    )


def _write(table: pd.DataFrame, path: Path, score_columns: list[str]) -> WrittenTable:
    """Tab-separated text with scores rendered like the original, and typed Parquet."""
    text = table.copy()
    for column in score_columns:
        text[column] = score_texts(table[column].to_numpy())
    write_text(path, text.to_csv(sep="\t", index=False, lineterminator="\n"))
    parquet = path.with_suffix(".parquet")
    write_parquet(pa.Table.from_pandas(table, preserve_index=False), parquet)
    return WrittenTable(text=path, parquet=parquet)


def _check_ledger_matches(ledger: pd.DataFrame, predictions: pd.DataFrame) -> None:
    """Every kept frame has a prediction and every prediction a ledger row, or we stop.

    A mismatch means a frame was lost or invented between preparation and scoring.
    """
    ok = ledger[ledger["status"] == STATUS_OK]
    empty = ok[ok["kept_frames"].fillna("") == ""]
    if len(empty):
        raise FeatureError(f"ledger chunk {empty['chunk_id'].iloc[0]} is `ok` but lists no frame")
    kept = set(ok["kept_frames"].str.split(",").explode())
    predicted = set(predictions["Sequence_ID"])
    for absent, where in ((kept - predicted, "have no prediction"), (predicted - kept, "")):
        if absent:
            shown = ", ".join(sorted(absent)[:5])
            problem = where or "are not kept frames of an `ok` chunk in the ledger"
            raise FeatureError(f"{len(absent)} frame(s) {problem}: {shown}")
