"""The VirNucPro MLP classifier (SPEC §4) and loading its weight files safely.

Users hold the original `300_model.pth` / `500_model.pth`: whole modules pickled by a
training script run as `__main__` (class `__main__.MLPClassifier`). Unpickling such a
file normally imports and calls whatever globals it names, so a tampered file could run
any code. We load it with `torch.load(weights_only=True)` and an allow-list that maps
`__main__.MLPClassifier` to our class plus the few torch.nn classes the original used;
any other global is refused before unpickling starts, and only the state dict of what
was unpickled is kept.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from virnucpro.errors import CheckpointError, FeatureError

log = logging.getLogger(__name__)

HIDDEN_DIM = 512
CLASSES = ("others", "virus")

# The name the original training script's class was pickled under.
ORIGINAL_CLASS_NAME = "__main__.MLPClassifier"


class MLPClassifier(nn.Module):
    """Linear → BatchNorm1d → ReLU → Dropout → Linear; class 0 = others, 1 = virus.

    Attribute names match the original so its state dicts load without renaming.
    """

    def __init__(self, input_dim: int, hidden_dim: int = HIDDEN_DIM, num_class: int = 2) -> None:
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.output_layer = nn.Linear(hidden_dim, num_class)

    @property
    def input_dim(self) -> int:
        return self.hidden_layer.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hidden_layer(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.dropout(x)
        return self.output_layer(x)


# Everything a pickled original MLPClassifier may reference beyond torch's own
# weights_only defaults (tensors, OrderedDict, ...). Nothing here runs code on load.
_ALLOWED_GLOBALS: list = [
    (MLPClassifier, ORIGINAL_CLASS_NAME),
    nn.Linear,
    nn.BatchNorm1d,
    nn.ReLU,
    nn.Dropout,
    nn.Parameter,
    torch._utils._rebuild_parameter,
    torch._utils._rebuild_parameter_with_state,
    set,
]


def load_classifier(path: Path, *, dnabert_dim: int, esm_dim: int) -> MLPClassifier:
    """Load an original whole-module pickle or a plain state dict, safely, in eval mode.

    Refuses (CheckpointError) a file naming any global outside the allow-list, and a
    classifier whose input size is not `dnabert_dim + esm_dim`.
    """
    path = Path(path)
    state = _state_dict_from_file(path)
    weight = state.get("hidden_layer.weight")
    if weight is None or weight.dim() != 2:
        raise CheckpointError(
            f"{path}: not a VirNucPro classifier (no 2-d 'hidden_layer.weight'; "
            f"keys: {sorted(state)[:8]})"
        )
    hidden_dim, input_dim = weight.shape
    check_input_dim(input_dim, dnabert_dim=dnabert_dim, esm_dim=esm_dim, source=str(path))
    model = MLPClassifier(input_dim, hidden_dim, num_class=state["output_layer.weight"].shape[0])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the VirNucPro MLP: {error}") from error
    log.info("loaded classifier %s (%d inputs, %d hidden)", path, input_dim, hidden_dim)
    return model.eval()


def check_input_dim(input_dim: int, *, dnabert_dim: int, esm_dim: int, source: str) -> None:
    """Raise CheckpointError when the embedders cannot feed this classifier.

    The usual cause is an ESM-2 model other than the one the classifier was trained on,
    so the message spells out the split the original used.
    """
    produced = dnabert_dim + esm_dim
    if input_dim == produced:
        return
    raise CheckpointError(
        f"classifier {source} expects {input_dim} features "
        f"({dnabert_dim} DNABERT-S + {input_dim - dnabert_dim} ESM-2) but the embedders produce "
        f"{dnabert_dim}+{esm_dim} = {produced}: was it trained for a different ESM-2 size?"
    )


def _state_dict_from_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: classifier file not found")
    with torch.serialization.safe_globals(_ALLOWED_GLOBALS):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (ValueError, RuntimeError, pickle.UnpicklingError) as error:
            raise CheckpointError(f"{path}: not a torch.save checkpoint: {error}") from error
        if unsafe:
            raise CheckpointError(
                f"{path}: refusing to load: the pickle names global(s) {', '.join(unsafe)} "
                "outside the classifier allow-list (loading would run that code)"
            )
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as error:
            raise CheckpointError(f"{path}: cannot be loaded safely: {error}") from error
    if isinstance(loaded, nn.Module):
        return loaded.state_dict()
    if isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return dict(loaded)
    raise CheckpointError(
        f"{path}: holds a {type(loaded).__name__}, expected an MLPClassifier or its state dict"
    )


@torch.inference_mode()
def predict_proba(
    model: MLPClassifier, features: np.ndarray, *, batch_size: int = 4096
) -> np.ndarray:
    """Softmax class probabilities, float32 [n, 2]: column 0 = others, 1 = virus."""
    if features.ndim != 2 or features.shape[1] != model.input_dim:
        raise FeatureError(
            f"classifier expects feature rows of {model.input_dim} values, "
            f"got an array of shape {features.shape}"
        )
    model.eval()
    device = next(model.parameters()).device
    pieces = []
    for start in range(0, len(features), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size]))
        logits = model(batch.to(device=device, dtype=torch.float32))
        pieces.append(torch.softmax(logits, dim=1).cpu().numpy())
    if not pieces:
        return np.zeros((0, len(CLASSES)), dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32, copy=False)
