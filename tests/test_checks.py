"""What a run refuses before doing any work (the flow and the library run the same check)."""

import dataclasses
import os
from pathlib import Path

import pytest

from virnucpro.demo_models.random_models import write_demo_models
from virnucpro.errors import CheckpointError, InputError
from virnucpro.run import pipeline
from virnucpro.run.checks import check_inputs
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
        trust_remote_code=True,
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
        check_inputs(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("classifier", r"missing\.pth: classifier file not found"),
        ("esm_model", r"missing\.pt: no such file, and not a known ESM-2 model name"),
        ("dnabert_model", r"missing_dir: no such directory, and not a Hugging Face hub id"),
        ("trust_remote_code", r"dnabert_demo: this model ships its own Python code"),
    ],
)
def test_models_that_cannot_load_are_refused_before_any_work(tmp_path, models, change, message):
    value = {
        "classifier": tmp_path / "missing.pth",
        "esm_model": str(tmp_path / "missing.pt"),
        "dnabert_model": str(tmp_path / "missing_dir"),
        "trust_remote_code": False,
    }
    config = config_for(tmp_path, models, **{change: value[change]})
    with pytest.raises(CheckpointError, match=message):
        pipeline.predict(config)
    assert not config.out_dir.exists()  # nothing prepared, nothing written


def test_models_resolve_to_local_paths_before_any_work(tmp_path, models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_for(tmp_path, models)
    relative = Path(os.path.relpath(models.dnabert, tmp_path))
    config = dataclasses.replace(
        config, models=dataclasses.replace(config.models, dnabert_model=str(relative))
    )
    checked = check_inputs(config)
    assert checked.models.dnabert_model == str(relative)
    assert checked.models.esm_model == str(models.esm)
    assert not config.out_dir.exists()


def test_an_unknown_precision_is_refused_however_the_config_is_made():
    from virnucpro.errors import OptionError

    with pytest.raises(OptionError, match=r"--precision bf17: not a precision \(choose from"):
        ModelConfig(classifier=Path("x.pth"), precision="bf17")
