"""The random-init DNABERT-S snapshot: loaded as users load the real one, with its traits.

Only transformers and torch APIs are used on the snapshot, so these tests document how
the real remote code behaves under the installed transformers, which our loader must
cope with: transformers 5 builds `from_pretrained` models on the meta device (which the
ALiBi construction cannot survive), loading without `trust_remote_code` silently gives
a plain BERT, the DNABERT-2 variant lacks `pad_token_id`, and BF16/FP16 weights need
autocast.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from virnucpro.demo_models.dnabert_snapshot import write_dnabert_snapshot

VARIANTS = ("dnabert-s", "dnabert-2")
HAS_TRITON = importlib.util.find_spec("triton") is not None
TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
HEADS = 4


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dnabert_snapshots")
    return {v: write_dnabert_snapshot(root / v, variant=v, num_heads=HEADS) for v in VARIANTS}


def load_model(snapshot: Path) -> torch.nn.Module:
    """A way to load the remote code that works under transformers 4 and 5.

    `AutoModel.from_config` builds the model on the CPU (not on the meta device, as
    transformers 5's `from_pretrained` does) and the weights are then loaded strictly.
    DNABERT-2's config has no `pad_token_id`; `None` is what transformers 4 configs had.
    """
    config = AutoConfig.from_pretrained(snapshot, trust_remote_code=True)
    if not hasattr(config, "pad_token_id"):
        config.pad_token_id = None
    model = AutoModel.from_config(config, trust_remote_code=True)
    state = torch.load(snapshot / "pytorch_model.bin", map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def models(snapshots) -> dict[str, torch.nn.Module]:
    return {v: load_model(path) for v, path in snapshots.items()}


@pytest.fixture(scope="module")
def tokenizer(snapshots):
    return AutoTokenizer.from_pretrained(snapshots["dnabert-s"], trust_remote_code=True)


def dna(rng: random.Random, n: int, alphabet: str = "ACGT") -> str:
    return "".join(rng.choices(alphabet, k=n))


def remote_module(model: torch.nn.Module):
    """The loaded `bert_layers` module of `model` (transformers' dynamic module)."""
    return sys.modules[type(model).__module__]


def one_at_a_time_means(model, tokenizer, sequences: list[str]) -> torch.Tensor:
    """Mean over all tokens (special ones included) of each sequence run alone, FP32."""
    with torch.no_grad():
        rows = [
            model(tokenizer(s, return_tensors="pt")["input_ids"])[0][0].mean(0) for s in sequences
        ]
    return torch.stack(rows)


def batched_means(model, tokenizer, sequences: list[str]) -> torch.Tensor:
    """Masked mean of each sequence in one padded batch, as float32."""
    batch = tokenizer(sequences, return_tensors="pt", padding=True)
    mask = batch["attention_mask"].unsqueeze(-1)
    with torch.no_grad():
        hidden = model(batch["input_ids"], attention_mask=batch["attention_mask"])[0].float()
    return (hidden * mask).sum(1) / mask.sum(1)


@pytest.fixture(scope="module")
def sequences() -> list[str]:
    rng = random.Random(3)
    return [dna(rng, n) for n in (1, 7, 60, 250, 400)] + ["ACGTNNNNNNACGTAC"]


def test_snapshot_has_the_real_files_and_is_reproducible(snapshots, tmp_path):
    names = {p.name for p in snapshots["dnabert-s"].iterdir()}
    assert names == {
        "config.json",
        "configuration_bert.py",
        "bert_layers.py",
        "bert_padding.py",
        "flash_attn_triton.py",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "pytorch_model.bin",
    }
    again = write_dnabert_snapshot(tmp_path / "again", num_heads=HEADS)
    for name in names - {"pytorch_model.bin"}:
        assert (again / name).read_bytes() == (snapshots["dnabert-s"] / name).read_bytes()
    first = torch.load(snapshots["dnabert-s"] / "pytorch_model.bin", weights_only=True)
    second = torch.load(again / "pytorch_model.bin", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = write_dnabert_snapshot(tmp_path / "other", seed=1, num_heads=HEADS)
    third = torch.load(other / "pytorch_model.bin", weights_only=True)
    assert not torch.equal(
        first["encoder.layer.0.mlp.wo.weight"], third["encoder.layer.0.mlp.wo.weight"]
    )


def test_tokenizer_has_dnabert_special_tokens_and_covers_acgtn(tokenizer):
    special = [tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert [*special, tokenizer.pad_token_id, tokenizer.mask_token_id] == [0, 1, 2, 3, 4]
    rng = random.Random(0)
    ids = tokenizer(dna(rng, 500, "ACGTN"))["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2
    assert tokenizer.unk_token_id not in ids
    assert len(ids) < 500  # BPE merges several bases per token


def test_configs_come_from_the_remote_code(snapshots):
    s_config = AutoConfig.from_pretrained(snapshots["dnabert-s"], trust_remote_code=True)
    v2_config = AutoConfig.from_pretrained(snapshots["dnabert-2"], trust_remote_code=True)
    for config in (s_config, v2_config):
        assert type(config).__module__.startswith("transformers_modules.")
        assert config.alibi_starting_size == 512
    # DNABERT-S: transformers' BertConfig underneath, pad_token_id 0 (the tokenizer's [PAD] is 3).
    assert isinstance(s_config, transformers.BertConfig)
    assert s_config.pad_token_id == 0
    # DNABERT-2-117M: a bare PretrainedConfig without pad_token_id, which the model code reads.
    assert not isinstance(v2_config, transformers.BertConfig)
    assert not hasattr(v2_config, "pad_token_id")
    with pytest.raises(AttributeError, match="has no attribute 'pad_token_id'"):
        AutoModel.from_config(v2_config, trust_remote_code=True)


@pytest.mark.skipif(not TRANSFORMERS_5, reason="transformers 4 builds models on the CPU")
@pytest.mark.parametrize("variant", VARIANTS)
def test_from_pretrained_fails_on_transformers_5_meta_init(snapshots, variant):
    """The ALiBi bias is built in __init__ from a CPU tensor times a default-device one."""
    config = AutoConfig.from_pretrained(snapshots[variant], trust_remote_code=True)
    config.pad_token_id = getattr(config, "pad_token_id", None)
    with pytest.raises(RuntimeError, match="Tensor on device meta is not on the expected device"):
        AutoModel.from_pretrained(snapshots[variant], trust_remote_code=True, config=config)


@pytest.mark.parametrize("variant", VARIANTS)
def test_without_trust_remote_code_loads_a_plain_bert_with_missing_weights(snapshots, variant):
    """Not refused: model_type "bert" is known, so transformers' own BERT is used."""
    model, info = AutoModel.from_pretrained(
        snapshots[variant], trust_remote_code=False, output_loading_info=True
    )
    assert type(model) is transformers.BertModel
    assert "encoder.layer.0.attention.self.query.weight" in info["missing_keys"]
    assert "encoder.layer.0.attention.self.Wqkv.weight" in info["unexpected_keys"]


def test_auto_map_serves_every_remote_class(snapshots, models):
    config = AutoConfig.from_pretrained(snapshots["dnabert-s"], trust_remote_code=True)
    masked_lm = AutoModelForMaskedLM.from_config(config, trust_remote_code=True).eval()
    classifier = AutoModelForSequenceClassification.from_config(config, trust_remote_code=True)
    for model in (models["dnabert-s"], masked_lm, classifier):
        assert remote_module(model) is remote_module(models["dnabert-s"])
    head = masked_lm.cls.predictions.decoder
    assert head.weight is masked_lm.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        logits = masked_lm(torch.tensor([[1, 5, 6, 7, 2]])).logits
    assert logits.shape == (1, 5, config.vocab_size)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_returns_a_tuple_and_ignores_other_keywords(models, tokenizer, variant):
    model = models[variant]
    batch = tokenizer(["ACGTACGTAGGA", "ACG"], return_tensors="pt", padding=True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
        positional = model(ids, None, mask)  # (input_ids, token_type_ids, attention_mask)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == (*ids.shape, model.config.hidden_size)
    assert out[1].shape == (2, model.config.hidden_size)
    assert torch.equal(out[0], positional[0])
    # Unpadded inside, padded back with zeros.
    assert torch.count_nonzero(out[0][1][mask[1] == 0]) == 0


def test_alibi_is_a_plain_float32_attribute(snapshots):
    model = load_model(snapshots["dnabert-s"])
    alibi = model.encoder.alibi
    assert alibi.shape == (1, HEADS, 512, 512) and alibi.dtype == torch.float32
    assert not any("alibi" in name for name in model.state_dict())
    assert not any(buffer is alibi for buffer in model.buffers())
    # Slopes 2^-2, 2^-4, 2^-6, 2^-8 for 4 heads; the bias is -slope * |i - j|.
    assert torch.equal(alibi[0, :, 0, 3], torch.tensor([-0.75, -3 / 16, -3 / 64, -3 / 256]))
    model.to(torch.bfloat16)
    assert model.encoder.alibi.dtype == torch.float32
    assert next(model.parameters()).dtype == torch.bfloat16


def test_batch_longer_than_512_tokens_regrows_alibi(snapshots, tokenizer):
    model = load_model(snapshots["dnabert-s"])
    short = tokenizer("ACGTTGCA" * 10, return_tensors="pt")["input_ids"]
    long = tokenizer(dna(random.Random(1), 2500), return_tensors="pt")["input_ids"]
    assert long.shape[1] > 512
    with torch.no_grad():
        before = model(short)[0]
        with pytest.warns(UserWarning, match=f"Increasing alibi size from 512 to {long.shape[1]}"):
            hidden = model(long)[0]
        after = model(short)[0]
    assert hidden.shape == (1, long.shape[1], model.config.hidden_size)
    assert model.encoder.alibi.shape == (1, HEADS, long.shape[1], long.shape[1])
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_batch_equals_one_at_a_time(models, tokenizer, sequences, variant):
    model = models[variant]
    single = one_at_a_time_means(model, tokenizer, sequences)
    batched = batched_means(model, tokenizer, sequences)
    assert torch.cosine_similarity(batched, single, dim=1).min() >= 0.99999


@pytest.mark.parametrize(("dtype", "name"), [(torch.bfloat16, "BFloat16"), (torch.float16, "Half")])
def test_low_precision_weights_fail_without_autocast(snapshots, tokenizer, dtype, name):
    """The float32 mask makes the attention product mix dtypes, as in the real code."""
    model = load_model(snapshots["dnabert-s"]).to(dtype)
    model.encoder.alibi = model.encoder.alibi.to(dtype)  # converting the bias is not enough
    batch = tokenizer(["ACGTAC", "ACGTACGTTT"], return_tensors="pt", padding=True)
    message = f"expected m1 and m2 to have the same dtype, but got: float != c10::{name}"
    with pytest.raises(RuntimeError, match=message):
        model(batch["input_ids"], attention_mask=batch["attention_mask"])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_weights_work_under_autocast(snapshots, models, tokenizer, sequences, dtype):
    reference = one_at_a_time_means(models["dnabert-s"], tokenizer, sequences)
    model = load_model(snapshots["dnabert-s"]).to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        batched = batched_means(model, tokenizer, sequences)
    assert torch.cosine_similarity(batched, reference, dim=1).min() >= 0.9995


@pytest.mark.skipif(HAS_TRITON, reason="triton is installed")
def test_without_triton_the_pytorch_attention_runs(models):
    assert remote_module(models["dnabert-s"]).flash_attn_qkvpacked_func is None


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_with_triton_the_kernel_path_must_be_switched_off(snapshots, tokenizer):
    model = load_model(snapshots["dnabert-s"])
    ids = tokenizer("ACGTACGT", return_tensors="pt")["input_ids"]
    module = remote_module(model)
    with pytest.raises(NotImplementedError):
        model(ids)
    kernel = module.flash_attn_qkvpacked_func
    module.flash_attn_qkvpacked_func = None
    try:
        assert model(ids)[0].shape[1] == ids.shape[1]
    finally:
        module.flash_attn_qkvpacked_func = kernel


@pytest.mark.slow  # a fresh interpreter importing transformers
@pytest.mark.skipif(HAS_TRITON, reason="triton is installed")
def test_hub_repository_path_demands_triton(snapshots, tmp_path):
    """Loaded by repo id (from the Hub cache), every code file is import-checked."""
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--zhihan1996--DNABERT-S"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    files = repo / "snapshots" / commit
    files.mkdir(parents=True)
    for path in snapshots["dnabert-s"].iterdir():
        (files / path.name).write_bytes(path.read_bytes())
    script = textwrap.dedent(
        """
        from transformers import AutoModel
        try:
            AutoModel.from_pretrained("zhihan1996/DNABERT-S", trust_remote_code=True)
        except ImportError as error:
            print(error)
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert "requires the following packages that were not found in your environment: triton" in (
        result.stdout
    )
