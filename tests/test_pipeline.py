"""What a run refuses before doing any work (the library path; the flow calls the same check)."""

from pathlib import Path

import pytest
from helpers import copy_with_remote_code

from virnucpro.demo_models.random_models import write_demo_models
from virnucpro.errors import CheckpointError, InputError
from virnucpro.models import esm_checkpoint
from virnucpro.run import pipeline
from virnucpro.run.config import ModelConfig, PredictConfig

READS = ">r1\n" + "ATG" * 120 + "\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_demo_models(tmp_path_factory.mktemp("models"))


def config_for(tmp_path: Path, models, **changes) -> PredictConfig:
    reads = tmp_path / "reads.fa"
    reads.write_text(READS)
    model_config = ModelConfig(
        classifier=models.classifier,
        esm_model=str(models.esm),
        dnabert_model=str(models.dnabert),
    )
    for key, value in changes.items():
        model_config = ModelConfig(**{**model_config.__dict__, key: value})
    return PredictConfig(reads=(reads,), out_dir=tmp_path / "out", models=model_config)


def test_inputs_whose_outputs_would_collide_are_refused(tmp_path, models):
    config = config_for(tmp_path, models)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    twins = (tmp_path / "a" / "x.fa", tmp_path / "b" / "x.fa.gz")
    config = PredictConfig(reads=twins, out_dir=config.out_dir, models=config.models)
    with pytest.raises(InputError, match=r"b/x\.fa\.gz and .*a/x\.fa would both write to"):
        pipeline.check_inputs(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("classifier", r"missing\.pth: classifier file not found"),
        ("esm_model", r"missing\.pt: no such file, and not a known ESM-2 model name"),
        ("dnabert_model", r"missing_dir: no such directory, and not a Hugging Face hub name"),
        ("remote_code", r"remote_dnabert: this model ships its own Python code"),
    ],
)
def test_models_that_cannot_load_are_refused_before_any_work(tmp_path, models, change, message):
    value = {
        "classifier": tmp_path / "missing.pth",
        "esm_model": str(tmp_path / "missing.pt"),
        "dnabert_model": str(tmp_path / "missing_dir"),
    }
    if change == "remote_code":
        remote = copy_with_remote_code(models.dnabert, tmp_path / "remote_dnabert")
        config = config_for(tmp_path, models, dnabert_model=str(remote))
    else:
        config = config_for(tmp_path, models, **{change: value[change]})
    with pytest.raises(CheckpointError, match=message):
        pipeline.predict(config)
    assert not config.out_dir.exists()  # nothing prepared, nothing written


def test_names_resolved_later_pass_the_check_without_network(tmp_path, models, monkeypatch):
    monkeypatch.setattr(esm_checkpoint, "download", pytest.fail)
    config = config_for(
        tmp_path,
        models,
        esm_model="esm2_t36_3B_UR50D",
        dnabert_model="zhihan1996/DNABERT-S",
        trust_remote_code=True,
    )
    pipeline.check_inputs(config)  # no error, nothing fetched
    pipeline.check_inputs(config_for(tmp_path, models, dnabert_model="bert-base-uncased"))
