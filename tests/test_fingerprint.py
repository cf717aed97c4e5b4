"""Results are keyed by content: model bytes, resolved precision; hashes cached."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from virnucpro.run.config import ModelConfig
from virnucpro.run.fingerprint import cache_file, content_hash, model_identity, run_fingerprint


@pytest.fixture
def models(tmp_path) -> ModelConfig:
    (tmp_path / "classifier.pth").write_bytes(b"classifier")
    (tmp_path / "esm.pt").write_bytes(b"esm weights")
    snapshot = tmp_path / "dnabert"
    snapshot.mkdir()
    (snapshot / "config.json").write_text("{}")
    (snapshot / "pytorch_model.bin").write_bytes(b"dnabert weights")
    return ModelConfig(
        classifier=tmp_path / "classifier.pth",
        esm_model=str(tmp_path / "esm.pt"),
        dnabert_model=str(snapshot),
    )


def test_the_same_bytes_rewritten_keep_the_key(models):
    before = run_fingerprint(models, "fp32")
    data = Path(models.esm_model).read_bytes()
    Path(models.esm_model).write_bytes(data)  # as `make demo` rewrites its models
    os.utime(models.esm_model, ns=(1, 1))
    assert run_fingerprint(models, "fp32") == before


@pytest.mark.parametrize("change", ["classifier", "esm", "dnabert file", "dnabert new file"])
def test_changed_model_bytes_change_the_key(models, change):
    before = run_fingerprint(models, "fp32")
    snapshot = Path(models.dnabert_model)
    target = {
        "classifier": models.classifier,
        "esm": Path(models.esm_model),
        "dnabert file": snapshot / "config.json",
        "dnabert new file": snapshot / "bert_layers.py",
    }[change]
    target.write_bytes(b"changed")
    assert run_fingerprint(models, "fp32") != before


def test_precision_is_part_of_the_key_and_must_be_resolved(models):
    assert run_fingerprint(models, "bf16") != run_fingerprint(models, "fp32")
    with pytest.raises(ValueError, match="resolved precision, not 'auto'"):
        run_fingerprint(models, "auto")


def test_hashes_come_from_the_cache_when_path_size_and_mtime_match(tmp_path, monkeypatch):
    big = tmp_path / "big.pt"
    big.write_bytes(b"x" * 1000)
    expected = hashlib.sha256(b"x" * 1000).hexdigest()
    assert content_hash(big) == expected
    assert expected in json.loads(cache_file().read_text()).values()

    reads = []
    real_open = Path.open

    def counting_open(self, *args, **kwargs):
        if self == big.resolve():
            reads.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    assert content_hash(big) == expected and reads == []  # from the cache
    big.write_bytes(b"y" * 1000)  # same size, new mtime: hashed again
    reads.clear()
    assert content_hash(big) == hashlib.sha256(b"y" * 1000).hexdigest() and len(reads) == 1


def test_a_damaged_cache_is_rebuilt(tmp_path):
    cache_file().parent.mkdir(parents=True, exist_ok=True)
    cache_file().write_text("{not json")
    path = tmp_path / "m.pt"
    path.write_bytes(b"m")
    assert content_hash(path) == hashlib.sha256(b"m").hexdigest()
    assert json.loads(cache_file().read_text())


def test_an_unresolved_hub_name_cannot_be_keyed():
    with pytest.raises(ValueError, match="resolve models first"):
        model_identity("zhihan1996/DNABERT-S")
