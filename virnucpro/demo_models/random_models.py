"""Small random-weight models of the real architectures, for tests, demo and benchmarks.

No pretrained weights can be downloaded in CI, so tests compare our engines against the
reference implementations on random weights generated here, saved in the same on-disk
formats as the real ones so they go through the same loading code: a fair-esm hub file
for ESM-2, a snapshot directory for DNABERT-S with our stand-in of its remote model code
(`dnabert_snapshot`, loaded by `AutoModel` / `AutoTokenizer` with `trust_remote_code`),
and a classifier pickled as a whole module by a script run as
`__main__` (the original's format, which exercises the safe loader). ESM-2 weights have
realistic scales (Xavier matrices, LayerNorm gains away from 1) so a missing or
misplaced operation changes the output visibly.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch

from virnucpro.demo_models.dnabert_snapshot import write_dnabert_snapshot
from virnucpro.models.esm_model import ALPHABET, PAD_IDX, Esm2, EsmConfig


def random_esm2(config: EsmConfig, seed: int = 0, device: str | torch.device = "cpu") -> Esm2:
    """Our ESM-2 with seeded random weights, in eval mode (FP32), built on `device`.

    The same seed gives different weights on different devices (their generators
    differ). CPU generation is serial (~75 s for 3B), so GPU benchmarks build there.
    """
    with torch.device("meta"):  # skip the default init: every weight is drawn below
        model = Esm2(config)
    model = model.to_empty(device=device)
    generator = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith(".weight"):
                param.normal_(1, 0.1, generator=generator)
            elif param.ndim == 1:
                param.normal_(0, 0.02, generator=generator)
            else:
                bound = math.sqrt(6 / sum(param.shape))
                param.uniform_(-bound, bound, generator=generator)
        model.embed_tokens.weight[PAD_IDX].zero_()
    return model.eval().requires_grad_(False)


def write_demo_esm_checkpoint(
    path: str | Path,
    num_layers: int = 6,
    embed_dim: int = 320,
    attention_heads: int = 20,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Path:
    """Write a random ESM-2 in fair-esm's hub format, as the released files are laid out.

    `{"cfg": {"model": Namespace(...)}, "model": {...}}` with `encoder.sentence_encoder.` prefixes
    on the encoder, `encoder.lm_head.*` and per-layer `rot_emb.inv_freq` entries, so
    loading it exercises the same key handling as a real download. `dtype` stores the
    encoder weights in that precision (FP16 halves a 3B file, as users who convert
    theirs do); the loader accepts any floating dtype. `device` is where the weights
    are drawn (see `random_esm2`); the file always holds CPU tensors.
    """
    config = EsmConfig(num_layers, embed_dim, attention_heads)
    model = random_esm2(config, seed, device).to("cpu", dtype)
    state = {f"encoder.sentence_encoder.{k}": v for k, v in model.state_dict().items()}
    head_dim = config.head_dim
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    for layer in range(num_layers):
        key = f"encoder.sentence_encoder.layers.{layer}.self_attn.rot_emb.inv_freq"
        state[key] = inv_freq.clone()
    generator = torch.Generator().manual_seed(seed + 1)
    state["encoder.lm_head.weight"] = model.embed_tokens.weight.clone()
    state["encoder.lm_head.bias"] = torch.zeros(len(ALPHABET))
    state["encoder.lm_head.dense.weight"] = torch.randn(embed_dim, embed_dim, generator=generator)
    state["encoder.lm_head.dense.bias"] = torch.zeros(embed_dim)
    state["encoder.lm_head.layer_norm.weight"] = torch.ones(embed_dim)
    state["encoder.lm_head.layer_norm.bias"] = torch.zeros(embed_dim)
    # An attribute bag, as fair-esm's loader reads it (`cfg["model"].encoder_layers`).
    cfg = {
        "model": argparse.Namespace(
            encoder_layers=num_layers,
            encoder_embed_dim=embed_dim,
            encoder_attention_heads=attention_heads,
            token_dropout=True,
        )
    }
    path = Path(path)
    torch.save({"cfg": cfg, "model": state}, path)
    return path


# Written like the original training script: the class lives in `__main__`, and the
# whole module is pickled with torch.save.
_CLASSIFIER_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from torch import nn

    class MLPClassifier(nn.Module):
        def __init__(self, input_dim, hidden_dim, num_class):
            super().__init__()
            self.hidden_layer = nn.Linear(input_dim, hidden_dim)
            self.relu = nn.ReLU()
            self.output_layer = nn.Linear(hidden_dim, num_class)
            self.dropout = nn.Dropout(0.5)
            self.bn1 = nn.BatchNorm1d(hidden_dim)

        def forward(self, x):
            x = self.hidden_layer(x)
            x = self.bn1(x)
            x = self.relu(x)
            x = self.dropout(x)
            return self.output_layer(x)

    path, input_dim, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.manual_seed(seed)
    model = MLPClassifier(input_dim, 512, 2)
    # Non-trivial BatchNorm statistics, as after training.
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    model.eval()
    torch.save(model, path)
    """
)


def write_demo_classifier(path: Path, input_dim: int, seed: int = 0) -> Path:
    """Save a random MLPClassifier as the original did (whole module from `__main__`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", _CLASSIFIER_SCRIPT, str(path), str(input_dim), str(seed)],
        check=True,
        capture_output=True,
        text=True,
    )
    return path


# Written next to generated models so a run can warn that its predictions mean nothing.
RANDOM_MODELS_MARKER = "RANDOM_INIT_MODELS.txt"


def is_generated(model_path: Path) -> bool:
    """True for a model written by `write_demo_models` (random weights)."""
    return (Path(model_path).parent / RANDOM_MODELS_MARKER).exists()


@dataclass(frozen=True)
class GeneratedModels:
    """Paths of a generated model set, in the formats the real models come in."""

    esm: Path
    dnabert: Path
    classifier: Path


def write_demo_models(directory: Path, *, seed: int = 0) -> GeneratedModels:
    """A small ESM-2 (2 layers, 64 dims), DNABERT-S (2 layers, 32 hidden, remote code) and a
    classifier for their 96 features: enough to run the whole pipeline on a CPU in
    seconds. Their predictions are meaningless (random weights)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RANDOM_MODELS_MARKER).write_text(
        "These models have random weights: their predictions are meaningless.\n"
    )
    esm = write_demo_esm_checkpoint(
        directory / "esm2_demo.pt", num_layers=2, embed_dim=64, attention_heads=4, seed=seed
    )
    dnabert = write_dnabert_snapshot(
        directory / "dnabert_demo", hidden_size=32, num_layers=2, num_heads=2, seed=seed
    )
    classifier = write_demo_classifier(directory / "classifier_demo.pth", 32 + 64, seed=seed)
    return GeneratedModels(esm, dnabert, classifier)
