"""Placing runs on GPUs (--runs-per-gpu): the slots each worker takes; the refusals."""

import multiprocessing
import os
import time

import pytest

from binary_nn.errors import ConfigError
from binary_nn.experiments.gpus import (
    VISIBLE,
    GpuPlacement,
    gpu_placement,
    on_gpu,
    slot_queue,
    start_worker,
)
from binary_nn.run.config import TrainConfig


def _my_gpu(_):
    time.sleep(0.2)  # long enough that every worker takes a task
    return os.getpid(), os.environ.get(VISIBLE)


def test_each_worker_takes_one_gpu_and_each_gpu_gets_n_workers():
    placement = GpuPlacement(2, ("3", "5"))
    assert placement.processes == 4 and placement.slots() == ["3", "3", "5", "5"]
    context = multiprocessing.get_context("spawn")
    with context.Pool(
        4, initializer=start_worker, initargs=(slot_queue(context, placement),)
    ) as pool:
        seen = dict(pool.map(_my_gpu, range(8), chunksize=1))
    assert sorted(seen.values()) == ["3", "3", "5", "5"]  # one per worker, for its life


def test_runs_go_to_cuda_unless_they_ask_for_numpy():
    assert on_gpu(TrainConfig()).device == "cuda"
    assert on_gpu(TrainConfig(device="cuda:1", backend="torch")).device == "cuda:1"
    with pytest.raises(ConfigError, match="--backend numpy"):
        on_gpu(TrainConfig(backend="numpy"))


def test_no_gpu_is_one_sentence(tmp_path, capsys):
    with pytest.raises(ConfigError, match="torch sees none here"):
        gpu_placement(2, gpus=[])
    assert gpu_placement(0) is None
    from binary_nn.experiments.gpus import visible_gpus

    if visible_gpus():
        pytest.skip("this machine has a GPU")
    from binary_nn.experiments.campaign import main

    settings = tmp_path / "s.yaml"
    settings.write_text("name: s\ndataset: digits\nseeds: '1'\nsettings: [{method: GD}]\n")
    out = str(tmp_path / "out")
    assert main([str(settings), "--runs-per-gpu", "2", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--runs-per-gpu needs a CUDA GPU" in err and "Traceback" not in err
