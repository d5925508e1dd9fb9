"""A Ray cluster that loses a node mid-sweep: every point still finishes exactly once.

Starts a head and two worker nodes on this machine (``ray.cluster_utils.Cluster``), runs a
12-point grid on digits across them with ``--executor ray``, kills one worker node once some
points are under way, and checks: every point completed, each exactly once (one
``summary.json``, no epoch logged twice in its ``metrics.jsonl``), and every JSON file of the
sweep parseable (nothing torn). Prints one table and exits 1 if a check fails::

    python benchmarks/ray_node_loss.py

Needs ray (``pip install "binary-nn[ray]"``); about two minutes on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = """
method: grid
metric: {name: test/accuracy, goal: maximize}
parameters:
  method: {values: [GD, DFA, DRTP]}
  lr: {values: [1.0e-4, 3.0e-4]}
  binarize: {values: [true, false]}
  hidden: {value: "256,128"}
  epochs: {value: 12}
  seed: {value: 1}
command: ["${env}", "${interpreter}", "-m", "binary_nn.train", "${args_no_boolean_flags}"]
"""


def main() -> int:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "sweep.yaml").write_text(SWEEP)
        out = tmp / "out"
        sweep = subprocess.Popen(
            [sys.executable, "-m", "binary_nn.sweep", str(tmp / "sweep.yaml"), "--executor",
             "ray", "--address", cluster.address, "--out", str(out), "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and len(list(out.glob("*/summary.json"))) < 3:
            time.sleep(0.5)
        time.sleep(3)  # points under way on both worker nodes
        cluster.remove_node(workers[0])  # the node dies, with the runs it held
        killed_at = len(list(out.glob("*/summary.json")))
        _, stderr = sweep.communicate(timeout=1800)
        points = sorted(p for p in out.iterdir() if p.is_dir())
        statuses, repeated = {}, []
        for point in points:
            summary = json.loads((point / "summary.json").read_text())
            statuses[point.name] = summary["status"]
            lines = (point / "metrics.jsonl").read_text().splitlines()
            epochs = [json.loads(line)["epoch"] for line in lines if "train/loss" in line]
            if epochs != list(range(1, 13)):
                repeated.append(point.name)
        torn = []
        for path in out.rglob("*.json"):
            try:
                json.loads(path.read_text())
            except ValueError:
                torn.append(str(path))
        checks = {
            "the sweep exited 0": sweep.returncode == 0,
            "12 points, each completed": len(points) == 12
            and all(s == "completed" for s in statuses.values()),
            "no epoch run twice (metrics.jsonl)": not repeated,
            "no torn JSON file": not torn,
        }
    cluster.shutdown()
    print(f"killed one of two worker nodes after {killed_at} of 12 points had finished\n")
    print("| check | passed |\n|---|---|")
    for what, ok in checks.items():
        print(f"| {what} | {'yes' if ok else 'NO'} |")
    if sweep.returncode:
        print(stderr[-2000:])
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
