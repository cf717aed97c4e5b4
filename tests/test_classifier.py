"""VirNucPro MLP: safe loading of the original pickles, outputs, refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from virnucpro.demo_models.random_models import write_demo_classifier
from virnucpro.errors import CheckpointError, FeatureError
from virnucpro.models.classifier import MLPClassifier, load_classifier, predict_proba

# Like the original training script: run as __main__, pickle the whole module.
ORIGINAL_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    import torch.nn as nn

    class MLPClassifier(nn.Module):
        def __init__(self, input_dim, hidden_dim, num_class):
            super(MLPClassifier, self).__init__()
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
            x = self.output_layer(x)
            return x

    model_path, inputs_path, outputs_path = sys.argv[1:4]
    torch.manual_seed(3)
    model = MLPClassifier(3328, 512, 2)
    model.train()
    for _ in range(3):  # a few training-mode passes give real BatchNorm statistics
        model(torch.randn(64, 3328) * 2 + 0.3)
    model.eval()
    torch.save(model, model_path)
    inputs = torch.randn(16, 3328)
    with torch.no_grad():
        outputs = torch.softmax(model(inputs), dim=1)
    torch.save(inputs, inputs_path)
    torch.save(outputs, outputs_path)
    """
)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """An original-format classifier plus inputs and the live module's probabilities."""
    folder = tmp_path_factory.mktemp("original")
    script = folder / "train_mlp.py"
    script.write_text(ORIGINAL_SCRIPT)
    paths = [folder / name for name in ("300_model.pth", "inputs.pt", "outputs.pt")]
    subprocess.run([sys.executable, str(script), *map(str, paths)], check=True, cwd=folder)
    return paths


def test_original_pickle_loads_safely_with_identical_outputs(original):
    model_path, inputs_path, outputs_path = original
    model = load_classifier(model_path, dnabert_dim=768, esm_dim=2560)
    assert isinstance(model, MLPClassifier) and not model.training
    inputs = torch.load(inputs_path, weights_only=True).numpy()
    expected = torch.load(outputs_path, weights_only=True).numpy()
    probabilities = predict_proba(model, inputs, batch_size=5)
    assert probabilities.dtype == np.float32 and probabilities.shape == (16, 2)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_state_dict_loads_too(original, tmp_path):
    model = load_classifier(original[0], dnabert_dim=768, esm_dim=2560)
    path = tmp_path / "state.pth"
    torch.save(model.state_dict(), path)
    again = load_classifier(path, dnabert_dim=768, esm_dim=2560)
    x = np.random.default_rng(0).normal(size=(4, 3328)).astype(np.float32)
    np.testing.assert_array_equal(predict_proba(again, x), predict_proba(model, x))


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    torch.save({"hidden_layer.weight": torch.zeros(2, 2), "x": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*refusing.*system"):
        load_classifier(path, dnabert_dim=1, esm_dim=1)
    assert not marker.exists()


def test_dimension_mismatch_names_the_split(tmp_path):
    path = write_demo_classifier(tmp_path / "500_model.pth", input_dim=3328, seed=1)
    with pytest.raises(CheckpointError) as error:
        load_classifier(path, dnabert_dim=768, esm_dim=1280)
    message = str(error.value)
    assert "500_model.pth expects 3328 features (768 DNABERT-S + 2560 ESM-2)" in message
    assert "768+1280 = 2048" in message and "different ESM-2 size" in message


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.pth"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match=r"model\.pth"):
        load_classifier(path, dnabert_dim=768, esm_dim=2560)
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "absent.pth", dnabert_dim=768, esm_dim=2560)


def test_features_of_wrong_width_are_refused():
    model = MLPClassifier(10).eval()
    with pytest.raises(FeatureError, match="10 values"):
        predict_proba(model, np.zeros((3, 9), dtype=np.float32))
