"""Output files: original formats byte for byte, and every read accounted for."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from virnucpro.errors import FeatureError
from virnucpro.reads.ledger import STATUS_EMPTY_READ, LedgerRow
from virnucpro.reads.preparation import prepare_reads
from virnucpro.run.outputs import score_texts, write_outputs

README = Path(__file__).resolve().parents[1] / "README.md"


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
def reads(reference_dir) -> dict[str, str]:
    return fasta(reference_dir / "reads_public.fa")


@pytest.fixture(scope="module")
def ledger(reads, reference_dir) -> pd.DataFrame:
    """A ledger for reads_public.fa (C=300) built from the original tool's own files."""
    chunks = fasta(reference_dir / "reads_public_chunked300.fa")
    frames = list(fasta(reference_dir / "reads_public_chunked300_identified_protein.faa"))
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


def determine_virus(group: pd.DataFrame) -> pd.Series:
    """The original `prediction.py`'s rule for one chunk, as it wrote it."""
    return pd.Series({"Is_Virus": group["score2"].max() >= group["score1"].max()})


def original_files(frame_ids, probabilities, directory: Path) -> tuple[bytes, bytes]:
    """What the original `prediction.py` writes for these probabilities, done its way:
    labels from `torch.max` over the softmax rows, each float32 NumPy row through
    `'\\t'.join(map(str, row))`, then the text file read back with pandas and grouped
    by chunk with `groupby(...).apply(determine_virus)`."""
    rows = torch.from_numpy(probabilities)
    _, predicted = torch.max(rows.data, 1)
    label_map = {1: "virus", 0: "others"}
    output_file = directory / "prediction_results.txt"
    with open(output_file, "w") as f:
        f.write("Sequence_ID\tPrediction\tscore1\tscore2\n")
        for seqid, prediction, probability in zip(frame_ids, predicted, rows.numpy(), strict=True):
            prob_str = "\t".join(map(str, probability))
            f.write(f"{seqid}\t{label_map[prediction.item()]}\t{prob_str}\n")
    df = pd.read_csv(output_file, sep="\t")
    df["Modified_ID"] = df["Sequence_ID"].str[:-2]
    df = df.groupby("Modified_ID", group_keys=False).apply(determine_virus).reset_index()
    highest = directory / "prediction_results_highestscore.csv"
    df.to_csv(highest, sep="\t", index=False)
    return output_file.read_bytes(), highest.read_bytes()


@pytest.fixture(scope="module")
def written(tmp_path_factory, ledger, predictions):
    return write_outputs(tmp_path_factory.mktemp("out"), *predictions, ledger)


def test_original_format_files_match_byte_for_byte(written, predictions, tmp_path):
    expected_predictions, expected_highest = original_files(*predictions, tmp_path)
    assert written.predictions.text.name == "prediction_results.txt"
    assert written.highest_scores.text.name == "prediction_results_highestscore.csv"
    assert written.predictions.text.read_bytes() == expected_predictions
    assert written.highest_scores.text.read_bytes() == expected_highest


def test_tie_is_others_and_chunk_tie_is_virus(written, predictions):
    first = written.predictions.text.read_text().splitlines()[1].split("\t")
    assert first[1:] == ["others", "0.5", "0.5"]


def test_scores_are_float32_text_as_the_original_writes_them():
    """The issue's example: softmax of logits (0, 1) is written 0.26894143 0.7310586."""
    row = torch.softmax(torch.tensor([[0.0, 1.0]]), dim=1).numpy()[0]
    assert score_texts(row) == ["0.26894143", "0.7310586"]
    assert score_texts(np.array([1e-5, 1 / 3, 0.25, np.nan], dtype=np.float32)) == [
        "1e-05",
        "0.33333334",
        "0.25",
        "",
    ]


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
            assert np.float32(row.max_p_virus) == np.float32(best)  # reads back exactly
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


def test_verdict_and_max_p_virus_as_the_readme_explains(tmp_path):
    """A read whose best P(virus) is 0.51 is `others` when its chunk's best P(others)
    is higher (from another frame): README, read_verdicts.tsv."""
    rows = [
        LedgerRow("r1", 300, "r1_chunk_1", 0, 300, "r1_chunk_1F1,r1_chunk_1R1", 0, "ok"),
        LedgerRow("r2", 300, "r2_chunk_1", 0, 300, "r2_chunk_1F2", 0, "ok"),
    ]
    frames = ["r1_chunk_1F1", "r1_chunk_1R1", "r2_chunk_1F2"]
    probabilities = np.array([[0.49, 0.51], [0.9, 0.1], [0.3, 0.7]], dtype=np.float32)
    written = write_outputs(tmp_path, frames, probabilities, rows)
    verdicts = written.read_verdicts.text.read_text().splitlines()
    assert verdicts[1:] == ["r1\t1\t1\t0\t0.51\tothers", "r2\t1\t1\t1\t0.7\tvirus"]


def readme_columns() -> dict[str, list[str]]:
    """File name → the **bold** column names the README's outputs table lists for it."""
    columns = {}
    for line in README.read_text().splitlines():
        if match := re.match(r"\| `([^`]+)`[^|]*\|[^|]*\|(.*)\|$", line):
            columns[match[1]] = re.findall(r"\*\*(\w+)\*\*", match[2])
    return columns


def test_readme_explains_every_column_of_every_output(written, reference_dir, tmp_path):
    """README's outputs table names each file's columns, in order, and the Parquet
    files it promises exist with the same columns."""
    listed = readme_columns()
    prepared = prepare_reads(reference_dir / "test_with_orfs.fa", 500, tmp_path, workers=1)
    headers = {"X_chunked300_ledger.tsv": prepared.ledger.read_text().splitlines()[0].split("\t")}
    for table in (written.predictions, written.highest_scores, written.read_verdicts,
                  written.unclassified):  # fmt: skip
        header = table.text.read_text().splitlines()[0].split("\t")
        headers[table.text.name] = header
        assert pd.read_parquet(table.parquet).columns.tolist() == header
    assert listed == headers
    assert not prepared.ledger.with_suffix(".parquet").exists()  # README promises none
