"""Read what W&B recorded offline: its ``run-*.wandb`` file, a LevelDB-style log of protobufs."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

HEADER = 7  # ":W&B", a 2-byte magic number, a version byte
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    out, pos, pending = [], HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # the rest of a block too small for a record header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def complete_records(path: Path, timeout: float = 30.0) -> list:
    """The records once the log ends with its ``exit`` record.

    ``wandb.finish`` can return while W&B's service process is still writing the log, so a
    reader waits for the last record rather than taking a half-written file.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = records(path)
        except Exception:  # a record cut off mid-write does not parse yet
            found = []
        if found and found[-1].WhichOneof("record_type") == "exit":
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} has no complete exit record after {timeout} s")
        time.sleep(0.05)


def summarise(path: Path) -> dict:
    """The run record, the config, and every history row (values decoded from JSON)."""
    run, config, history = None, {}, []
    for record in complete_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            history.append(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
            )
    return {"run": run, "config": config, "history": history}
