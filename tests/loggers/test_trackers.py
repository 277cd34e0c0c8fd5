"""One GRPO run logged to a real MLflow server, TensorBoard and JSONL, read back as a user
would: MLflow's client, TensorBoard's reader, the sample files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow

LOG_SAMPLES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    """An ``mlflow server`` with a SQLite store on 127.0.0.1, stopped after the module."""
    import requests

    root = tmp_path_factory.mktemp("mlflow-server")
    uri = f"http://127.0.0.1:{free_port()}"
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
         "--port", uri.rsplit(":", 1)[1], "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # its workers share the group
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no background job runner
    )
    try:
        deadline = time.monotonic() + 240  # a busy 2-core machine needs a minute
        while True:
            try:
                if requests.get(uri + "/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, (root / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def grpo_run(mlflow_uri, tmp_path_factory) -> Path:
    """Two GRPO steps with evaluations at steps 0, 1 and 2, logged by three loggers."""
    from rlkit.launch import train
    from tests.conftest import compose_overrides

    run_dir = tmp_path_factory.mktemp("grpo-tracked")
    train(compose_overrides([
        "algo=grpo", "reward=math", "logger=[jsonl,tensorboard,mlflow]", f"logger.mlflow.tracking_uri={mlflow_uri}",
        "logger.mlflow.experiment=tracked", "logger.mlflow.log_model=true", "trainer.max_steps=2",
        "trainer.batch_size=4", "trainer.micro_batch_size=16", "algo.group_size=4", "algo.sampling.max_new_tokens=8",
        "trainer.eval_every=1", "trainer.eval_samples=4", f"trainer.log_samples={LOG_SAMPLES}",
        "trainer.eval_max_new_tokens=8", "trainer.save_every=0", "data.train_size=64", "data.eval_size=4",
    ]), run_dir)
    return run_dir


def test_samples_files_hold_prompt_completion_reward_and_correctness(grpo_run: Path) -> None:
    assert sorted(p.name for p in (grpo_run / "samples").iterdir()) == ["step_0.jsonl", "step_1.jsonl", "step_2.jsonl"]
    rows = [json.loads(line) for line in (grpo_run / "samples" / "step_2.jsonl").read_text().splitlines()]
    assert len(rows) == LOG_SAMPLES
    for row in rows:
        assert set(row) == {"prompt", "completion", "answer", "correct", "truncated", "reward"}
        assert row["answer"] and row["prompt"].strip()
        assert isinstance(row["correct"], bool) and row["reward"] == (1.0 if row["correct"] else 0.0)


def test_mlflow_run_read_back(grpo_run: Path, mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from rlkit.loggers.mlflow import ID_FILE

    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run((grpo_run / ID_FILE).read_text().strip())
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tracked"
    assert run.data.params["algo.name"] == "grpo" and run.data.params["trainer.max_steps"] == "2"
    assert run.data.params["algo.group_size"] == "4" and run.data.params["logger.mlflow.experiment"] == "tracked"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/accuracy")] == [0, 1, 2]

    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.png", "samples", "final"} <= top
    assert {f.path for f in client.list_artifacts(run.info.run_id, "samples")} == {
        "samples/step_0.json", "samples/step_1.json", "samples/step_2.json"}
    assert "final/model.safetensors" in {f.path for f in client.list_artifacts(run.info.run_id, "final")}
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "samples/step_2.json", str(tmp_path))).read_text())
    expected = [json.loads(line) for line in (grpo_run / "samples" / "step_2.jsonl").read_text().splitlines()]
    assert [dict(zip(table["columns"], row)) for row in table["data"]] == expected


def test_tensorboard_scalars_text_and_hparams(grpo_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(grpo_run / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2]
    status = json.loads((grpo_run / "status.json").read_text())
    [final_accuracy] = events.Scalars("hparams/eval/accuracy")
    assert (final_accuracy.step, final_accuracy.value) == (2, pytest.approx(status["metrics"]["eval/accuracy"]))

    samples = events.Tensors("samples/text_summary")
    assert [e.step for e in samples] == [0, 1, 2]
    table = samples[-1].tensor_proto.string_val[0].decode()
    assert table.splitlines()[0] == "| prompt | completion | answer | correct | truncated | reward |"
    assert len(table.splitlines()) == 2 + LOG_SAMPLES

    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    assert hparams["algo.name"].string_value == "grpo" and hparams["trainer.max_steps"].number_value == 2
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert "hparams/eval/accuracy" in {m.name.tag for m in experiment.experiment.metric_infos}


def test_mlflow_resumed_run_continues_the_same_run(mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from rlkit.loggers.base import RunInfo
    from rlkit.loggers.mlflow import MlflowLogger

    info = RunInfo(run_dir=tmp_path, name="resumed", total_steps=4, config={"trainer": {"lr": 0.5}})
    config = MlflowLogger.Config(tracking_uri=mlflow_uri, experiment="resume")
    first = MlflowLogger(config, info)
    first.log({"loss": 1.0}, step=1)
    first.close()  # killed before completing
    assert MlflowClient(tracking_uri=mlflow_uri).get_run(first.run_id).info.status == "FAILED"

    second = MlflowLogger(config, info)
    assert second.run_id == first.run_id
    second.log({"loss": 0.5}, step=2)
    second.log_summary({"loss": 0.5})
    second.close()
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"trainer.lr": "0.5"}
    assert [(m.step, m.value) for m in client.get_metric_history(first.run_id, "loss")] == [(1, 1.0), (2, 0.5)]


def test_unreachable_server_fails_in_one_line_before_training(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rlkit", "algo=sft", f"hydra.run.dir={tmp_path}", "logger=[mlflow]",
               f"logger.mlflow.tracking_uri=http://127.0.0.1:{free_port()}", "logger.mlflow.connect_timeout=2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    last = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("Set the environment")][-1]
    assert last.startswith("ConnectionError: logger.mlflow.tracking_uri=http://127.0.0.1:")
    assert "no MLflow server answers" in last
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "final").exists()
