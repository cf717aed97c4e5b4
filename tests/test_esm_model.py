"""Our packed ESM-2 forward against fair-esm's own `ESM2` on the same random weights."""

import esm
import numpy as np
import pytest
import torch
from helpers import cosine_rows

from virnucpro.demo_models.random_models import random_esm2
from virnucpro.models.batching import token_budget_batches
from virnucpro.models.esm_embedder import EsmEmbedder, encode_proteins, pack_batch
from virnucpro.models.esm_model import (
    Esm2,
    EsmConfig,
    nested_attention,
    padded_attention,
    select_attention_backend,
    varlen_attention,
)

AMINO_ACIDS = np.array(list("LAGVSERTIDPKQNFYMHWCXBUZO"))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def random_proteins(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(AMINO_ACIDS, n)) for n in lengths]


def fair_esm_embeddings(model: Esm2, sequences, device="cpu") -> np.ndarray:
    """The original pooling: fair-esm FP32 forward, mean of last layer over residues 1..L."""
    config = model.config
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    reference = esm.model.esm2.ESM2(
        config.num_layers, config.embed_dim, config.attention_heads, alphabet
    )
    reference.load_state_dict(model.state_dict(), strict=False)  # + rot_emb, heads: unused
    reference = reference.to(device).eval()
    converter = alphabet.get_batch_converter(truncation_seq_length=1022)
    out = np.empty((len(sequences), config.embed_dim), dtype=np.float32)
    lengths = [min(len(s), 1022) + 2 for s in sequences]
    for group in token_budget_batches(lengths, 1100, padded=True):  # the original's batching
        _, _, tokens = converter([(str(i), sequences[i]) for i in group])
        with torch.no_grad():
            result = reference(tokens.to(device), repr_layers=[config.num_layers])
        layer = result["representations"][config.num_layers].float().cpu()
        for row, i in enumerate(group):
            n = min(len(sequences[i]), 1022)
            out[i] = layer[row, 1 : n + 1].mean(0).numpy()
    return out


def embed_fp32(model: Esm2, sequences, **options) -> np.ndarray:
    return EsmEmbedder(model, device="cpu", precision="fp32", **options).embed(sequences)


MIXED_LENGTHS = [1, 2, 3, 7, 12, 30, 45, 60, 77, 98, 99, 99, 120, 150, 165, 166, 166]
MIXED_LENGTHS += [180, 200, 33, 250, 64, 128, 5, 99, 166, 400, 1021, 1022, 1023, 1100]


def test_packed_forward_matches_fair_esm_6_layers():
    model = random_esm2(EsmConfig(6, 320, 20), seed=1)
    sequences = random_proteins(MIXED_LENGTHS, seed=1)
    want = fair_esm_embeddings(model, sequences)
    got = embed_fp32(model, sequences, max_tokens=1500)
    assert got.shape == (len(sequences), 320) and got.dtype == np.float32
    assert cosine_rows(got, want).min() >= 0.99999
    assert np.abs(got - want).max() <= 1e-4


def test_packed_forward_matches_fair_esm_12_layers():
    model = random_esm2(EsmConfig(12, 480, 20), seed=2)
    sequences = random_proteins([1, 9, 99, 166, 130, 250, 420], seed=2)
    want = fair_esm_embeddings(model, sequences)
    got = embed_fp32(model, sequences)
    assert cosine_rows(got, want).min() >= 0.99999
    assert np.abs(got - want).max() <= 1e-4


def test_result_does_not_depend_on_batch_composition_or_order():
    model = random_esm2(EsmConfig(6, 320, 20), seed=3)
    sequences = random_proteins(MIXED_LENGTHS[:-4], seed=3)
    baseline = embed_fp32(model, sequences, max_tokens=4096)
    permutation = np.random.default_rng(3).permutation(len(sequences))
    shuffled = embed_fp32(model, [sequences[i] for i in permutation], max_tokens=300)
    padded = embed_fp32(model, sequences, max_tokens=700, pad_tokens_to=256)
    np.testing.assert_allclose(shuffled, baseline[permutation], atol=2e-5, rtol=0)
    np.testing.assert_allclose(padded, baseline, atol=2e-5, rtol=0)


def test_a_sequence_alone_equals_it_in_a_pack():
    model = random_esm2(EsmConfig(6, 320, 20), seed=4)
    sequences = random_proteins([166, 99, 40], seed=4)
    together = embed_fp32(model, sequences)
    alone = np.stack([embed_fp32(model, [s])[0] for s in sequences])
    np.testing.assert_allclose(together, alone, atol=2e-5, rtol=0)


def test_model_parameter_names_are_fair_esm_state_dict_keys():
    ours = set(Esm2(EsmConfig(2, 64, 4)).state_dict())
    theirs = set(esm.model.esm2.ESM2(2, 64, 4).state_dict())
    assert ours == {k for k in theirs if not k.startswith(("lm_head.", "contact_head."))} - {
        k for k in theirs if k.endswith("rot_emb.inv_freq")
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch-internal, on compile
def test_forward_traces_as_one_graph_for_compile():
    """fullgraph=True fails on any graph break, so compile can fuse the whole forward."""
    model = random_esm2(EsmConfig(2, 64, 4), seed=8)
    encoded = encode_proteins(random_proteins([5, 99, 166, 40], seed=8))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=True)
    for indices in ([0, 1, 2, 3], [2, 0]):  # two shapes: no failure on a new shape
        batch = pack_batch(encoded, np.array(indices), pad_tokens_to=256)
        inputs = [torch.from_numpy(x) for x in (batch.tokens, batch.positions, batch.cu_seqlens)]
        with torch.inference_mode():
            want = model(*inputs, batch.max_len)
            got = compiled(*inputs, batch.max_len)
        torch.testing.assert_close(got, want)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inductor_compiled_embedder_matches_eager_on_cpu():
    """Compiled once (dynamic shapes) for steps of every size, and still exact."""
    from torch._dynamo.utils import counters

    sets = [random_proteins([3, 30, 99, 166, 120, 7], seed=9), random_proteins([50] * 9, seed=10)]
    model = random_esm2(EsmConfig(2, 64, 4), seed=9)
    wants = [embed_fp32(model, sequences) for sequences in sets]
    compiled = EsmEmbedder(model, "cpu", "fp32", compile=True, max_tokens=300)
    graphs_before = counters["stats"]["unique_graphs"]
    for sequences, want in zip(sets, wants, strict=True):
        got = compiled.embed(sequences)
        assert compiled.last_stats.padding_tokens > 0 and compiled.last_stats.steps > 1
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert compiled.compile  # no fallback to eager happened
    assert counters["stats"]["unique_graphs"] - graphs_before == 1


def per_sequence_attention(q, k, v, cu_seqlens):
    outputs = []
    for start, end in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist(), strict=True):
        qs, ks, vs = (x[start:end].transpose(0, 1) for x in (q, k, v))
        outputs.append(torch.nn.functional.scaled_dot_product_attention(qs, ks, vs).transpose(0, 1))
    return torch.cat(outputs)


def random_qkv(lengths, heads=4, head_dim=16, device="cpu", dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    total = sum(lengths)
    q, k, v = (torch.randn(total, heads, head_dim, generator=generator) for _ in range(3))
    cu = torch.tensor(np.concatenate(([0], np.cumsum(lengths))), dtype=torch.int32)
    return [x.to(device, dtype) for x in (q, k, v)], cu.to(device), max(lengths)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype")
@pytest.mark.parametrize("backend", [padded_attention, nested_attention])
def test_cpu_attention_backends_match_per_sequence_attention(backend):
    (q, k, v), cu, max_len = random_qkv([5, 1, 17, 3, 40])
    want = per_sequence_attention(q, k, v, cu)
    got = backend(q, k, v, cu, max_len + 7)  # max_len may overestimate
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_backend_choice():
    assert select_attention_backend(torch.device("cpu"), torch.bfloat16) == "padded"
    assert select_attention_backend(torch.device("cuda"), torch.float32) == "nested"


@pytest.mark.gpu
@needs_cuda
def test_gpu_varlen_and_nested_attention_equal_padded():
    device = torch.device("cuda")
    (q, k, v), cu, max_len = random_qkv([5, 1, 17, 3, 40], device=device, dtype=torch.bfloat16)
    want = padded_attention(q, k, v, cu, max_len).float()
    torch.testing.assert_close(
        nested_attention(q, k, v, cu, max_len).float(), want, atol=2e-2, rtol=0
    )
    if select_attention_backend(device, torch.bfloat16) == "varlen":
        got = varlen_attention(q, k, v, cu, max_len).float()
        torch.testing.assert_close(got, want, atol=2e-2, rtol=0)


@pytest.mark.gpu
@needs_cuda
def test_gpu_bf16_packed_forward_close_to_fair_esm_fp32():
    model = random_esm2(EsmConfig(6, 320, 20), seed=5)
    sequences = random_proteins(MIXED_LENGTHS, seed=5)
    want = fair_esm_embeddings(model, sequences, device="cuda")
    embedder = EsmEmbedder(model, device="cuda", precision="bf16", compile=False)
    got = embedder.embed(sequences)
    assert cosine_rows(got, want).min() >= 0.99


@pytest.mark.gpu
@needs_cuda
def test_gpu_compiled_forward_equals_eager():
    sequences = random_proteins(MIXED_LENGTHS, seed=6)
    eager = EsmEmbedder(random_esm2(EsmConfig(6, 320, 20), 6), "cuda", "bf16", compile=False)
    compiled = EsmEmbedder(random_esm2(EsmConfig(6, 320, 20), 6), "cuda", "bf16", compile=True)
    want = eager.embed(sequences)
    got = compiled.embed(sequences)
    got_again = compiled.embed(sequences[::-1])[::-1]  # second shape set: no failure on reuse
    assert compiled.compile  # compiled for real: no fallback to eager
    assert compiled.last_stats.padding_tokens > 0
    assert cosine_rows(got, want).min() >= 0.999
    assert cosine_rows(got_again, want).min() >= 0.999
