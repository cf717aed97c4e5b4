"""Output files: original formats byte for byte, and every read accounted for."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from virnucpro.errors import FeatureError
from virnucpro.reads.ledger import STATUS_EMPTY_READ, LedgerRow
from virnucpro.run.outputs import score_text, score_texts, write_outputs

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/virnucpro_original"
if not REFERENCE.is_dir():
    REFERENCE = Path("/work/shared/reference/virnucpro_original")


def fasta(path: Path) -> dict[str, str]:
    records: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            current = line[1:].split()[0]
            records[current] = []
        elif current is not None:
            records[current].append(line.strip())
    return {name: "".join(parts) for name, parts in records.items()}


@pytest.fixture(scope="module")
def reads() -> dict[str, str]:
    return fasta(REFERENCE / "reads_public.fa")


@pytest.fixture(scope="module")
def ledger(reads) -> pd.DataFrame:
    """A ledger for reads_public.fa (C=300) built from the original tool's own files."""
    chunks = fasta(REFERENCE / "reads_public_chunked300.fa")
    frames = list(fasta(REFERENCE / "reads_public_chunked300_identified_protein.faa"))
    kept: dict[str, list[str]] = {}
    for frame in frames:
        kept.setdefault(frame[:-2], []).append(frame)
    rows = []
    for chunk_id, chunk in chunks.items():
        read_id = chunk_id.split("_chunk_")[0]
        rows.append(
            {
                "read_id": read_id,
                "read_length": len(reads[read_id]),
                "chunk_id": chunk_id,
                "chunk_length": len(chunk),
                "kept_frames": ",".join(kept.get(chunk_id, [])),
                "status": "ok" if chunk_id in kept else "no_stop_free_frame",
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def predictions(ledger):
    frame_ids = [f for frames in ledger["kept_frames"] for f in frames.split(",") if f]
    rng = np.random.default_rng(11)
    logits = torch.from_numpy(rng.normal(scale=2.0, size=(len(frame_ids), 2)).astype(np.float32))
    probabilities = torch.softmax(logits, dim=1).numpy()
    probabilities[0] = [0.5, 0.5]  # a tie: the original's torch.max picks index 0, others
    return frame_ids, probabilities


def reference_files(frame_ids, probabilities) -> tuple[bytes, bytes]:
    """SPEC §5 written the plain way: loops, the csv module, tolist() floats."""
    scores = torch.from_numpy(probabilities).tolist()
    predictions = io.StringIO()
    writer = csv.writer(predictions, delimiter="\t", lineterminator="\n")
    writer.writerow(["Sequence_ID", "Prediction", "score1", "score2"])
    best: dict[str, list[float]] = {}
    for frame, (others, virus) in zip(frame_ids, scores, strict=True):
        writer.writerow([frame, "virus" if virus > others else "others", others, virus])
        chunk = best.setdefault(frame[:-2], [others, virus])
        chunk[0], chunk[1] = max(chunk[0], others), max(chunk[1], virus)
    highest = io.StringIO()
    writer = csv.writer(highest, delimiter="\t", lineterminator="\n")
    writer.writerow(["Modified_ID", "Is_Virus"])
    for chunk in sorted(best):
        writer.writerow([chunk, best[chunk][1] >= best[chunk][0]])
    return predictions.getvalue().encode(), highest.getvalue().encode()


@pytest.fixture(scope="module")
def written(tmp_path_factory, ledger, predictions):
    return write_outputs(tmp_path_factory.mktemp("out"), *predictions, ledger)


def test_original_format_files_match_byte_for_byte(written, predictions):
    expected_predictions, expected_highest = reference_files(*predictions)
    assert written.predictions.text.name == "prediction_results.txt"
    assert written.highest_scores.text.name == "prediction_results_highestscore.csv"
    assert written.predictions.text.read_bytes() == expected_predictions
    assert written.highest_scores.text.read_bytes() == expected_highest


def test_tie_is_others_and_chunk_tie_is_virus(written, predictions):
    first = written.predictions.text.read_text().splitlines()[1].split("\t")
    assert first[1:] == ["others", "0.5", "0.5"]
    assert score_text(np.float32(1) / np.float32(3)) == "0.3333333432674408"


def test_a_column_renders_like_the_original_value_by_value():
    """The original: each float32 probability through `tensor.tolist()`, then str()."""
    values = np.random.default_rng(0).random(1000, dtype=np.float32)
    values[:4] = [0.0, 1.0, np.float32(1) / np.float32(3), 0.5]
    expected = [str(v) for v in torch.from_numpy(values).tolist()]
    assert score_texts(values) == expected
    assert score_texts(np.array([0.25, np.nan], dtype=np.float32)) == ["0.25", ""]


def test_every_read_gets_a_verdict(written, reads, ledger, predictions):
    verdicts = pd.read_csv(written.read_verdicts.text, sep="\t", keep_default_na=False)
    assert verdicts["read_id"].tolist() == list(reads)  # all 400, in input order
    frame_ids, probabilities = predictions
    p_virus = dict(zip(frame_ids, probabilities[:, 1].tolist(), strict=True))
    p_others = dict(zip(frame_ids, probabilities[:, 0].tolist(), strict=True))
    for row in verdicts.itertuples():
        chunks = ledger[ledger["read_id"] == row.read_id]
        frame_lists = [f.split(",") for f in chunks["kept_frames"] if f]
        virus_chunks = sum(
            max(p_virus[f] for f in fs) >= max(p_others[f] for f in fs) for fs in frame_lists
        )
        assert (row.chunks, row.chunks_classified, row.virus_chunks) == (
            len(chunks),
            len(frame_lists),
            virus_chunks,
        )
        if not frame_lists:
            assert (row.verdict, row.max_p_virus) == ("unclassified", "")
        else:
            assert row.verdict == ("virus" if virus_chunks else "others")
            best = max(p_virus[f] for fs in frame_lists for f in fs)
            assert float(row.max_p_virus) == best
    assert set(verdicts["verdict"]) == {"virus", "others", "unclassified"}


def test_unclassified_lists_every_chunk_without_a_score(written, ledger):
    table = pd.read_csv(written.unclassified.text, sep="\t")
    expected = ledger[ledger["kept_frames"] == ""]
    assert len(table) == len(expected) > 0
    assert table["chunk_id"].tolist() == expected["chunk_id"].tolist()
    assert set(table["reason"]) == {"no_stop_free_frame"}


def test_parquet_next_to_each_table(written, predictions):
    for table in (written.predictions, written.highest_scores, written.read_verdicts):
        assert table.parquet == table.text.with_suffix(".parquet")
    frame = pd.read_parquet(written.predictions.parquet)
    np.testing.assert_array_equal(frame["score2"].to_numpy(), predictions[1][:, 1])
    assert written.unclassified.parquet.is_file()


def test_ledger_rows_and_a_read_without_chunks(tmp_path, ledger, predictions):
    rows = [
        LedgerRow(
            chunk_start=0,
            ambiguous_codons_dropped=0,
            **{k: v for k, v in record.items() if k != "index"},
        )
        for record in ledger.to_dict("records")
    ]
    rows.append(LedgerRow("empty_read_1", 0, "", 0, 0, "", 0, STATUS_EMPTY_READ))
    written = write_outputs(tmp_path / "out", *predictions, rows)
    verdicts = pd.read_csv(written.read_verdicts.text, sep="\t", keep_default_na=False)
    assert len(verdicts) == 401
    assert verdicts.iloc[-1].tolist() == ["empty_read_1", 0, 0, 0, "", "unclassified"]
    unclassified = pd.read_csv(written.unclassified.text, sep="\t", keep_default_na=False)
    assert unclassified.iloc[-1]["reason"] == STATUS_EMPTY_READ


def test_frames_missing_or_unknown_are_refused(tmp_path, ledger, predictions):
    frame_ids, probabilities = predictions
    with pytest.raises(FeatureError, match=rf"1 frame\(s\) have no prediction: {frame_ids[-1]}"):
        write_outputs(tmp_path / "out", frame_ids[:-1], probabilities[:-1], ledger)
    extra = [*frame_ids, "z_chunk_1F1"]
    with pytest.raises(FeatureError, match="not kept frames"):
        write_outputs(tmp_path / "out", extra, np.ones((len(extra), 2)), ledger)
    with pytest.raises(FeatureError, match="lacks column"):
        write_outputs(tmp_path / "out", frame_ids, probabilities, ledger.drop(columns="status"))
