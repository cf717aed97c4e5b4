"""Loading ESM-2 weights from every accepted source, and refusing what is not one."""

import argparse
import json
from pathlib import Path

import esm
import pytest
import torch

from virnucpro.demo_models.random_models import random_esm2, write_demo_esm_checkpoint
from virnucpro.errors import CheckpointError
from virnucpro.models import esm_checkpoint
from virnucpro.models.esm_checkpoint import load_esm2
from virnucpro.models.esm_model import EsmConfig


def assert_same_weights(model, expected_state):
    state = model.state_dict()
    assert set(state) == set(expected_state)
    for key, value in state.items():
        assert torch.equal(value, expected_state[key]), key


def fair_esm_state_dict(num_layers=2, embed_dim=64, heads=4, seed=0):
    torch.manual_seed(seed)
    return esm.model.esm2.ESM2(num_layers, embed_dim, heads).state_dict()


def test_hub_format_file_loads_with_config_from_cfg(tmp_path):
    path = write_demo_esm_checkpoint(
        tmp_path / "hub.pt", num_layers=3, embed_dim=96, attention_heads=6
    )
    config, model = load_esm2(path)
    assert config == EsmConfig(3, 96, 6)  # 6 heads: only the cfg can say so
    assert_same_weights(model, random_esm2(config, seed=0).state_dict())
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_hub_file_loads_like_fair_esm_loads_it(tmp_path):
    """Same file through fair-esm's own v2 loader (which reads cfg by attribute)."""
    path = write_demo_esm_checkpoint(tmp_path / "a.pt", 2, 64, 4)
    _, ours = load_esm2(path)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    with pytest.warns(UserWarning, match="Regression weights not found"):
        theirs, _ = esm.pretrained.load_model_and_alphabet_core("esm2_test", data)
    their_state = theirs.state_dict()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, their_state[key]), key


def test_hub_file_with_a_plain_dict_cfg_loads_too(tmp_path):
    path = write_demo_esm_checkpoint(tmp_path / "a.pt", 3, 96, 6)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    data["cfg"] = {"model": vars(data["cfg"]["model"])}
    torch.save(data, tmp_path / "dict_cfg.pt")
    config, _ = load_esm2(tmp_path / "dict_cfg.pt")
    assert config == EsmConfig(3, 96, 6)


def test_model_trained_without_token_dropout_is_refused(tmp_path):
    """Its embeddings would need no ×0.88 rescale; no released ESM-2 is like that."""
    path = write_demo_esm_checkpoint(tmp_path / "a.pt", 2, 64, 4)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    data["cfg"]["model"].token_dropout = False
    torch.save(data, tmp_path / "no_dropout.pt")
    with pytest.raises(CheckpointError, match=r"no_dropout\.pt: cfg says token_dropout=False"):
        load_esm2(tmp_path / "no_dropout.pt")


def test_plain_fair_esm_state_dict_with_heads_from_table(tmp_path):
    state = fair_esm_state_dict(6, 320, 20)  # esm2_t6_8M_UR50D's shape
    path = tmp_path / "plain.pt"
    torch.save(state, path)
    config, model = load_esm2(path)
    assert config == EsmConfig(6, 320, 20)
    ours = model.state_dict()
    for key, value in ours.items():
        assert torch.equal(value, state[key]), key
    ignored = {k for k in state if k not in ours}
    assert ignored and all(
        k.startswith(("lm_head.", "contact_head.")) or k.endswith("rot_emb.inv_freq")
        for k in ignored
    )


def test_half_precision_file_loads_into_the_requested_dtype(tmp_path):
    path = write_demo_esm_checkpoint(tmp_path / "fp16.pt", 2, 64, 4, dtype=torch.float16)
    expected = random_esm2(EsmConfig(2, 64, 4), seed=0).half().state_dict()

    _, model = load_esm2(path)  # default: FP32
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert_same_weights(model, {k: v.float() for k, v in expected.items()})

    _, model = load_esm2(path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert_same_weights(model, {k: v.bfloat16() for k, v in expected.items()})
    assert not any(p.is_meta for p in model.parameters())


def test_legacy_non_zip_file_is_read_without_memory_mapping(tmp_path):
    """Files written before torch 1.6's zip format cannot be memory-mapped."""
    state = fair_esm_state_dict(6, 320, 20)
    path = tmp_path / "legacy.pt"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    _, model = load_esm2(path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_unknown_size_needs_heads_argument(tmp_path):
    path = tmp_path / "custom.pt"
    torch.save(fair_esm_state_dict(2, 64, 4), path)
    with pytest.raises(CheckpointError, match=r"custom\.pt.*2 layers × 64 dims.*attention_heads"):
        load_esm2(path)
    config, _ = load_esm2(path, attention_heads=4)
    assert config == EsmConfig(2, 64, 4)


def test_heads_argument_contradicting_cfg_is_refused(tmp_path):
    path = write_demo_esm_checkpoint(tmp_path / "hub.pt", 2, 64, 4)
    with pytest.raises(CheckpointError, match="cfg says 4 attention heads but 8"):
        load_esm2(path, attention_heads=8)


def test_unknown_name_or_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not a known ESM-2 model name"):
        load_esm2(tmp_path / "nothing.pt")


class NotAWeight:
    """A class torch.load(weights_only=True) must refuse to construct."""


def write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        torch.save(content, path)
    return path


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (bytes(range(256)) * 4, "not a PyTorch checkpoint"),
        (json.dumps({"model": "esm2"}), "not a PyTorch checkpoint"),
        ({"model": NotAWeight()}, "refused by the safe loader.*NotAWeight"),
        (torch.nn.Linear(3, 4).state_dict(), "no embed_tokens.weight"),
        ([torch.zeros(3)], "holds a list, not a state dict"),
        ({"embed_tokens.weight": torch.zeros(33, 8), "note": "x"}, "non-tensor entries: note"),
    ],
    ids=["random-bytes", "json", "pickled-object", "other-model", "list", "mixed"],
)
def test_non_checkpoints_are_refused_naming_file_and_problem(tmp_path, content, problem):
    path = write(tmp_path / "weights.pt", content)
    with pytest.raises(CheckpointError, match=rf"weights\.pt.*{problem}"):
        load_esm2(path, attention_heads=1)


def test_missing_and_unexpected_weights_are_listed(tmp_path):
    state = fair_esm_state_dict(6, 320, 20)
    del state["layers.3.fc2.bias"]
    state["layers.0.self_attn.extra_gate"] = torch.zeros(1)
    path = write(tmp_path / "broken.pt", state)
    with pytest.raises(CheckpointError) as raised:
        load_esm2(path)
    message = str(raised.value)
    assert "broken.pt" in message
    assert "missing 1 weight(s): layers.3.fc2.bias" in message
    assert "unexpected 1 weight(s): layers.0.self_attn.extra_gate" in message


def test_wrong_shape_is_refused(tmp_path):
    state = fair_esm_state_dict(6, 320, 20)
    state["layers.2.fc1.weight"] = torch.zeros(100, 320)
    with pytest.raises(CheckpointError, match=r"shapes do not match.*layers\.2\.fc1\.weight"):
        load_esm2(write(tmp_path / "shape.pt", state))


def test_known_sizes_table():
    assert esm_checkpoint.ESM2_MODELS["esm2_t36_3B_UR50D"] == EsmConfig(36, 2560, 40)
    assert esm_checkpoint.ESM2_MODELS["esm2_t33_650M_UR50D"] == EsmConfig(33, 1280, 20)
