"""The Prefect flow (`flows/predict.py`) against the library path, on CPU Dask workers.

Every flow run here goes through a real Prefect API (the test harness's temporary
server) and a real `distributed` cluster of worker processes, with the small
random-weight models, on the 400 public reads (902 frames at 300 nt), which make
`MIN_GROUPS` groups whatever the number of workers, so the library run compared against
the flow scores the same groups.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from Bio.SeqIO.FastaIO import SimpleFastaParser
from distributed import Client, LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp

from flows.predict import GroupsFailed, predict
from tasks.cluster import GPU_RESOURCE
from virnucpro.demo_models.random_models import (
    GeneratedModels,
    write_demo_classifier,
    write_demo_models,
)
from virnucpro.errors import VirNucProError
from virnucpro.run import pipeline
from virnucpro.run.config import ModelConfig, PredictConfig
from virnucpro.run.fingerprint import run_fingerprint
from virnucpro.run.group_inference import result_path, run_group
from virnucpro.run.planning import MIN_GROUPS

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
GROUPS = MIN_GROUPS  # 902 frames are far fewer tokens than one group's worth
TEXT_OUTPUTS = (
    "prediction_results.txt",
    "prediction_results_highestscore.csv",
    "read_verdicts.tsv",
    "unclassified.tsv",
)
CPU_PRECISION = "fp32"  # what `auto` means on these CPU workers
GROUP_TASK = "embed_classify_group"  # the Dask key prefix of the group task


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> GeneratedModels:
    return write_demo_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def reads(reference_dir) -> Path:
    return reference_dir / "reads_public.fa"


def flow_parameters(reads: Path, models: GeneratedModels, out_dir: Path, **changes) -> dict:
    return {
        "reads": [str(reads)],
        "classifier": str(models.classifier),
        "out_dir": str(out_dir),
        "chunk_length": 300,
        "esm_model": str(models.esm),
        "dnabert_model": str(models.dnabert),
        "trust_remote_code": True,
        "cpu_workers": WORKERS,
        **changes,
    }


def library_config(reads: Path, models: GeneratedModels, out_dir: Path) -> PredictConfig:
    """The configuration the flow builds from `flow_parameters` (same groups)."""
    return PredictConfig(
        reads=(reads,),
        out_dir=out_dir,
        models=ModelConfig(
            classifier=models.classifier,
            esm_model=str(models.esm),
            dnabert_model=str(models.dnabert),
            trust_remote_code=True,
        ),
        chunk_length=300,
    )


def text_outputs(out_dir: Path, stem: str = "reads_public") -> dict[str, bytes]:
    return {name: (out_dir / stem / name).read_bytes() for name in TEXT_OUTPUTS}


def delete_final_outputs(out_dir: Path, stem: str = "reads_public") -> None:
    for name in TEXT_OUTPUTS:
        path = out_dir / stem / name
        path.unlink()
        path.with_suffix(".parquet").unlink()


@pytest.fixture(scope="module")
def clean_flow_run(prefect_api, reads, models, tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted flow run: its out dir and the flow's return value."""
    out_dir = tmp_path_factory.mktemp("flow")
    return out_dir, predict(**flow_parameters(reads, models, out_dir))


@pytest.fixture(scope="module")
def clean_outputs(clean_flow_run) -> dict[str, bytes]:
    return text_outputs(clean_flow_run[0])


def test_flow_writes_what_the_library_writes(
    clean_flow_run, clean_outputs, reads, models, tmp_path
):
    out_dir, summary = clean_flow_run
    library = pipeline.predict(library_config(reads, models, tmp_path))

    assert text_outputs(tmp_path) == clean_outputs
    assert summary["groups"] == len(library.groups) == GROUPS
    assert summary["groups_skipped"] == 0
    assert summary["frames"] == 902
    assert summary["outputs"] == [str(out_dir / "reads_public")]

    # Every kept frame is scored exactly once, across all groups' result files.
    results = sorted((out_dir / ".virnucpro-work" / "results").glob("*/*.parquet"))
    assert [p.stem for p in results] == sorted(g.group_id for g in library.groups)
    scored = [
        f for p in results for f in pq.read_table(p, columns=["frame_id"])["frame_id"].to_pylist()
    ]
    with open(
        out_dir / "reads_public" / "reads_public_chunked300_identified_protein.faa"
    ) as handle:
        frames = [frame_id for frame_id, _ in SimpleFastaParser(handle)]
    assert len(scored) == len(set(scored)) == len(frames) == 902
    assert set(scored) == set(frames)


def api_log_messages(since: datetime, containing: str, expected: int) -> list[str]:
    """Messages logged to the Prefect API since `since` that contain `containing`.

    Group tasks log from the Dask worker processes, so their records reach the API (not
    pytest's caplog); workers send them in batches, hence the wait for `expected`."""
    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(timestamp=LogFilterTimestamp(after_=since)))
        messages = [log.message for log in logs if containing in log.message]
        if len(messages) >= expected or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def interrupted_run(
    reads: Path, models: GeneratedModels, out_dir: Path, finished: int
) -> list[str]:
    """What an interrupted run leaves: inputs prepared, groups planned, only the first
    `finished` groups scored, no final outputs. Returns the finished group ids."""
    config = library_config(reads, models, out_dir)
    prepared = [pipeline.prepare_input(config, path) for path in config.reads]
    groups = pipeline.plan(config, prepared)
    fingerprint = run_fingerprint(config.models, CPU_PRECISION)
    for group in groups[:finished]:
        run_group(group, pipeline.results_dir(config, fingerprint), config.models, fingerprint)
    return [g.group_id for g in groups[:finished]]


def test_rerun_after_interruption_skips_finished_groups(
    prefect_api, clean_outputs, reads, models, tmp_path, caplog
):
    finished = interrupted_run(reads, models, tmp_path, finished=3)
    assert not (tmp_path / "reads_public" / "read_verdicts.tsv").exists()

    started = datetime.now(UTC)
    with caplog.at_level("INFO", logger="prefect"):
        summary = predict(**flow_parameters(reads, models, tmp_path))

    assert summary["groups"] == GROUPS
    assert summary["groups_skipped"] == len(finished) == 3
    assert "5 groups done, 3 skipped" in caplog.text
    skipped = api_log_messages(started, "skipped (complete result found)", expected=3)
    assert sorted(m.split()[1] for m in skipped) == sorted(finished)
    assert text_outputs(tmp_path) == clean_outputs

    # Nothing left to do: a second rerun only reassembles the outputs.
    delete_final_outputs(tmp_path)
    summary = predict(**flow_parameters(reads, models, tmp_path))
    assert summary["groups_skipped"] == summary["groups"] == GROUPS
    assert text_outputs(tmp_path) == clean_outputs


@pytest.mark.parametrize("change", ["classifier", "chunk_length"])
def test_changed_parameters_do_not_reuse_results(
    clean_flow_run, clean_outputs, reads, models, tmp_path, change
):
    out_dir = tmp_path / "out"
    shutil.copytree(clean_flow_run[0], out_dir)
    delete_final_outputs(out_dir)
    if change == "classifier":
        other = write_demo_classifier(tmp_path / "other_classifier.pth", 32 + 64, seed=1)
        parameters = flow_parameters(reads, models, out_dir, classifier=str(other))
    else:
        parameters = flow_parameters(reads, models, out_dir, chunk_length=500)

    summary = predict(**parameters)

    assert summary["groups"] == GROUPS
    assert summary["groups_skipped"] == 0
    if change == "classifier":
        assert text_outputs(out_dir) != clean_outputs
    else:
        assert summary["frames"] != 902


def group_task_processing(client: Client) -> str | None:
    """The address of a worker now running a group task, if any."""
    for address, keys in client.processing().items():
        if any(GROUP_TASK in str(key) for key in keys):
            return address
    return None


def test_worker_killed_while_holding_a_group(prefect_api, clean_outputs, reads, models, tmp_path):
    cluster = LocalCluster(
        n_workers=WORKERS,
        processes=True,
        threads_per_worker=1,
        resources={GPU_RESOURCE: 1},
        dashboard_address=":0",
    )
    client = Client(cluster)
    outcome: dict = {}

    def run_flow() -> None:
        try:
            outcome["summary"] = predict(
                **flow_parameters(
                    reads, models, tmp_path, scheduler_address=cluster.scheduler_address
                )
            )
        except BaseException as error:  # reported by the test thread
            outcome["error"] = error

    runner = threading.Thread(target=contextvars.copy_context().run, args=(run_flow,))
    try:
        runner.start()
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and runner.is_alive() and time.monotonic() < deadline:
            victim = group_task_processing(client)
            time.sleep(0.02)
        assert victim is not None, f"no group task seen running: {outcome}"
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)

        runner.join(timeout=240)
        assert not runner.is_alive(), "the flow did not finish after the worker was killed"
        # The nanny replaced the killed process; the cluster is whole again.
        assert pid not in client.run(os.getpid).values()
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == WORKERS
    finally:
        client.close()
        cluster.close()

    assert "error" not in outcome, outcome.get("error")
    assert outcome["summary"]["groups"] == GROUPS
    assert text_outputs(tmp_path) == clean_outputs


def test_a_failing_group_fails_the_run_and_keeps_the_others(prefect_api, reads, models, tmp_path):
    config = library_config(reads, models, tmp_path)
    prepared = [pipeline.prepare_input(config, path) for path in config.reads]
    groups = pipeline.plan(config, prepared)
    results = pipeline.results_dir(config, run_fingerprint(config.models, CPU_PRECISION))
    broken = groups[2]
    result_path(results, broken).mkdir(parents=True)  # its result cannot be written

    with pytest.raises(GroupsFailed, match=broken.group_id) as failure:
        predict(**flow_parameters(reads, models, tmp_path))

    assert "1 group(s) failed" in str(failure.value)
    for group in groups:
        assert result_path(results, group).is_file() == (group is not broken), group.group_id


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )


def test_library_log_lines_reach_the_run_logs(clean_flow_run):
    """The library's INFO lines, from the worker processes and from the flow's live view,
    are in the Prefect API's logs next to Prefect's own."""
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert len(api_log_messages(since, "ESM-2 embedder on cpu", WORKERS)) >= WORKERS
    assert api_log_messages(since, "tok/s", 1)  # the live view's lines off a terminal


def test_run_publishes_progress_report_and_tables(clean_flow_run):
    """The Prefect UI shows what telemetry.json says: read back through the client."""
    out_dir, _ = clean_flow_run
    telemetry = json.loads((out_dir / "telemetry.json").read_text())["run"]
    assert telemetry["sequences"] == 902  # every frame once
    assert telemetry["groups_done"] == GROUPS

    progress = _artifacts("virnucpro-progress")
    assert progress and all(float(a.data) == 100.0 for a in progress)

    report = (out_dir / "report.md").read_text()
    assert "- Sequences: 902" in report
    assert any(a.data == report for a in _artifacts("virnucpro-report"))

    summaries = [
        {row["metric"]: row["value"] for row in json.loads(a.data)}
        for a in _artifacts("virnucpro-summary")
    ]
    assert any(s["sequences"] == 902 and s["tokens"] == telemetry["tokens"] for s in summaries)
    workers = [json.loads(a.data) for a in _artifacts("virnucpro-workers")]
    assert any(
        sum(row["sequences"] for row in table) == 902 and len(table) == WORKERS for table in workers
    )
    assert (out_dir / "dask-performance-report.html").stat().st_size > 0
    targets = json.loads((out_dir / "prometheus_targets.json").read_text())
    assert [t["labels"]["job"] for t in targets] == ["dask-scheduler", "dask-workers"]
    assert len(targets[1]["targets"]) == WORKERS
    # The throughput log outlives the run: one line per group, appended by the workers.
    log_lines = (out_dir / "throughput_log.csv").read_text().splitlines()
    assert log_lines[0].startswith("time,worker,gpu")
    assert len(log_lines) == 1 + GROUPS


def test_work_of_other_runs_is_removed_at_the_end_unless_kept(
    clean_flow_run, clean_outputs, reads, models, tmp_path
):
    """Group files no longer planned and results of other models or precisions go at the
    end of a successful run; `keep_work` keeps them. This run's own results stay."""
    out_dir = tmp_path / "out"
    shutil.copytree(clean_flow_run[0], out_dir)
    work = out_dir / ".virnucpro-work"
    (fingerprint,) = [p.name for p in (work / "results").iterdir()]
    stale = [work / "results" / "0123456789abcdef" / "g0000-000000000000.parquet"]
    stale.append(work / "groups" / "g0099-000000000000.parquet")
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"from an earlier run")

    summary = predict(**flow_parameters(reads, models, out_dir, keep_work=True))
    assert summary["groups_skipped"] == GROUPS
    assert all(path.exists() for path in stale)

    summary = predict(**flow_parameters(reads, models, out_dir))
    assert summary["groups_skipped"] == GROUPS
    assert not any(path.exists() for path in stale)
    assert not stale[0].parent.exists()
    assert len(list((work / "results" / fingerprint).glob("*.parquet"))) == GROUPS
    assert text_outputs(out_dir) == clean_outputs


def test_an_unknown_precision_is_refused_before_any_work(prefect_api, reads, models, tmp_path):
    """What argparse refuses on the command line, the flow refuses when called directly
    (a deployment's parameters): nothing is prepared."""
    with pytest.raises(VirNucProError, match=r"--precision bf17: not a precision"):
        predict(**flow_parameters(reads, models, tmp_path, precision="bf17"))
    assert list(tmp_path.iterdir()) == []


def flow_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`flows/predict.py` as a user runs it, with no Prefect API configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "flows" / "predict.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def user_error_files(tmp_path_factory, reads, models) -> Path:
    """A directory with good and bad inputs for the command line."""
    here = tmp_path_factory.mktemp("user-errors")
    shutil.copy(reads, here / "reads.fa")
    (here / "notes.fa").write_text("# not FASTA\n")
    (here / "bad.fa").write_bytes(reads.read_bytes() + b">odd one\nACGTXACGT\n")
    return here


def user_error_cases(models: GeneratedModels) -> dict[str, tuple[list[str], str]]:
    good_models = ["--esm-model", str(models.esm), "--dnabert-model", str(models.dnabert)]
    good = ["--classifier", str(models.classifier), *good_models, "--trust-remote-code"]
    return {
        "missing input": (["missing.fa", *good], r"missing\.fa: no such file"),
        "not FASTA": (["notes.fa", *good], r"notes\.fa: not FASTA: the first line"),
        "missing classifier": (
            ["reads.fa", "--classifier", "nope.pth", *good_models, "--trust-remote-code"],
            r"nope\.pth: classifier file not found",
        ),
        "mistyped model directory": (
            ["reads.fa", *good[:4], "--dnabert-model", "./dnabert_tset"],
            r"\./dnabert_tset: no such directory",
        ),
        "unknown precision": (
            ["reads.fa", *good, "--precision", "bf17"],
            r"argument --precision: invalid choice: 'bf17'",
        ),
        "missing option": (["reads.fa"], r"the following arguments are required: --classifier"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing input",
        "not FASTA",
        "missing classifier",
        "mistyped model directory",
        "unknown precision",
        "missing option",
    ],
)
def test_user_errors_are_one_line_before_anything_starts(case, user_error_files, models):
    args, problem = user_error_cases(models)[case]

    done = flow_command(*args, cwd=user_error_files)

    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()  # no traceback, no Prefect line: nothing started
    assert line.startswith(("virnucpro: error: ", "flows/predict.py: error: "))
    assert re.search(problem, line), line


def test_verbose_shows_a_user_errors_traceback(user_error_files, models):
    args, problem = user_error_cases(models)["missing input"]

    done = flow_command(*args, "--verbose", cwd=user_error_files)

    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert re.search(problem, done.stderr.splitlines()[-1])


def test_a_bad_record_found_while_preparing_is_one_error_line(user_error_files, models):
    """Found inside the run (reading the whole input takes the preparation itself):
    still one error line, naming file and record, and no traceback."""
    args, _ = user_error_cases(models)["missing input"]

    done = flow_command("bad.fa", *args[1:], cwd=user_error_files)

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Crash" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "virnucpro: error: bad.fa: record 401 (odd): character 'X' at position 5 "
        "is not a nucleotide code"
    ], done.stderr


def test_help_is_quick_without_prefect_dask_or_torch():
    """`flows/predict.py --help` under 2 s: the command line imports the flow (Prefect,
    Dask) only once its arguments and inputs are checked."""
    script = str(ROOT / "flows" / "predict.py")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", script, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--cpu-workers" in done.stdout, done.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert not imported & {"prefect", "dask", "distributed", "torch", "pandas"}
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, script, "--help"], check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    assert min(seconds) < 2
