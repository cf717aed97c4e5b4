"""Models resolved to local files once per run: caches, downloads, offline and typos.

Downloads go to real HTTP servers on 127.0.0.1 (one serving the file, one that accepts
connections and never answers, a closed port), the way a user's network fails."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from virnucpro.demo_models.random_models import write_demo_esm_checkpoint
from virnucpro.errors import CheckpointError
from virnucpro.models import sources
from virnucpro.models.esm_checkpoint import load_esm2
from virnucpro.models.esm_model import EsmConfig


@pytest.fixture
def file_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving `root`; yields (base URL, root)."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a network that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_fair_esm_name_in_the_torch_hub_cache_is_used_without_network(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(sources, "ESM2_URL", closed_port() + "/{name}.pt")
    cached = tmp_path / "checkpoints" / "esm2_t6_8M_UR50D.pt"
    cached.parent.mkdir()
    write_demo_esm_checkpoint(cached)
    assert sources.resolve_esm("esm2_t6_8M_UR50D") == cached
    config, _ = load_esm2("esm2_t6_8M_UR50D")
    assert config == EsmConfig(6, 320, 20)


def test_a_fair_esm_name_is_downloaded_once_into_the_model_cache(
    tmp_path, file_server, monkeypatch
):
    url, root = file_server
    write_demo_esm_checkpoint(root / "esm2_t36_3B_UR50D.pt", 2, 64, 4)
    monkeypatch.setattr(sources, "ESM2_URL", url + "/{name}.pt")
    cache = tmp_path / "cache"
    path = sources.resolve_esm("esm2_t36_3B_UR50D", cache)
    assert path == cache / "esm" / "esm2_t36_3B_UR50D.pt"
    assert path.read_bytes() == (root / "esm2_t36_3B_UR50D.pt").read_bytes()
    (root / "esm2_t36_3B_UR50D.pt").unlink()  # a second run needs no network
    assert sources.resolve_esm("esm2_t36_3B_UR50D", cache) == path
    assert load_esm2(path)[0] == EsmConfig(2, 64, 4)  # the file decides, not the name


@pytest.mark.parametrize("network", ["refused", "silent", "missing file"])
def test_an_unreachable_download_fails_fast_and_leaves_nothing(
    tmp_path, file_server, silent_server, monkeypatch, network
):
    base = {"refused": closed_port(), "silent": silent_server, "missing file": file_server[0]}
    monkeypatch.setattr(sources, "ESM2_URL", base[network] + "/{name}.pt")
    monkeypatch.setattr(sources, "NETWORK_TIMEOUT", 1.0)
    cache = tmp_path / "cache"
    started = time.monotonic()
    with pytest.raises(CheckpointError) as error:
        sources.resolve_esm("esm2_t6_8M_UR50D", cache)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert message.startswith("esm2_t6_8M_UR50D: not in the model cache")
    assert "--esm-model FILE" in message and "\n" not in message
    assert list((cache / "esm").iterdir()) == []  # no partial file


@pytest.mark.parametrize(
    "value", ["./models/esm.pt", "/nowhere/esm.pt", "~/esm.pt", "a/b/c.pt", "esm2_t99_1T"]
)
def test_an_esm_value_that_is_neither_file_nor_name_is_refused_at_once(value):
    with pytest.raises(CheckpointError, match="no such file, and not a known ESM-2 model name"):
        sources.resolve_esm(value)


@pytest.mark.parametrize(
    ("value", "local"),
    [
        ("zhihan1996/DNABERT-S", False),
        ("./dnabert", True),
        ("/opt/models/dnabert", True),
        ("~/dnabert", True),
        ("models/dnabert/s", True),
        ("models/dnabert_tst", True),  # models/ exists here
        ("DNABERT-S", False),
    ],
)
def test_values_that_cannot_be_hub_ids_are_local_paths(tmp_path, monkeypatch, value, local):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert sources.is_local_path(value) is local


def test_a_missing_local_snapshot_is_an_error_without_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="models/dnabert_tst: no such directory"):
        sources.resolve_dnabert("models/dnabert_tst")
    assert time.monotonic() - started < 1


RESOLVE = """
import sys, time
from virnucpro.errors import CheckpointError
from virnucpro.models import sources
started = time.monotonic()
try:
    sources.resolve_dnabert("zhihan1996/DNABERT-S", None, sys.argv[1])
except CheckpointError as error:
    print(f"{time.monotonic() - started:.1f}s", error)
    sys.exit(2)
"""


@pytest.mark.parametrize("network", ["refused", "silent"])
def test_an_offline_hub_id_fails_within_30_s_saying_what_to_do(tmp_path, silent_server, network):
    endpoint = {"refused": closed_port(), "silent": silent_server}[network]
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-c", RESOLVE, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    seconds, message = result.stdout.split(" ", 1)
    assert float(seconds[:-1]) < 30
    assert message.startswith("zhihan1996/DNABERT-S@main: not in the model cache")
    assert "--dnabert-model DIR" in message and message.count("\n") == 1
    snapshots = list(cache.rglob("snapshots/*/*"))
    assert snapshots == []  # nothing half-written


def test_an_interrupted_snapshot_is_refused(tmp_path):
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"lacks tokenizer\.json, pytorch_model\.bin or"):
        sources._check_snapshot(snapshot, "owner/name@main")


def test_the_flow_with_default_models_offline_fails_in_one_line_within_30_s(
    tmp_path, reference_dir
):
    """What a user without network sees: the default hub models cannot be fetched."""
    root = Path(__file__).resolve().parents[1]
    classifier = tmp_path / "300_model.pth"
    classifier.write_bytes(b"not read before the models are resolved")
    env = {
        **os.environ,
        "HF_ENDPOINT": closed_port(),
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "torch"),
    }
    env.pop("HF_HUB_OFFLINE", None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "flows/predict.py", str(reference_dir / "test_with_orfs.fa"),
         "--classifier", str(classifier), "--trust-remote-code", "--out", str(tmp_path / "o")],
        cwd=root, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "zhihan1996/DNABERT-S@main: not in the model cache" in line
    assert "--dnabert-model DIR" in line
    assert not (tmp_path / "o").exists()
