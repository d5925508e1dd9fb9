"""The shared mechanisms every command writes and reads through."""

import errno
import json
import os

import pytest

from binary_nn.data.remote import sha256_of
from binary_nn.errors import ConfigError, DataError, DiskFullError, os_error
from binary_nn.files import claim_output, read_json, read_json_object, write_json_atomic
from binary_nn.run.run_dir import RunDirectory


@pytest.mark.parametrize(
    ("make", "kind", "says"),
    [
        (lambda t: t / "a_dir", "file", "is a directory; give a file path"),
        (lambda t: t / "a_file", "dir", "is a file; give a directory"),
        (lambda t: t / "a_file" / "below", "file", "is a file, not a directory"),
        (lambda t: t / "a_file" / "below", "dir", "is a file, not a directory"),
        (lambda t: t / ("x" * 300), "file", "longer than the file system allows"),
        (lambda t: t / "fifo", "file", "is not a regular file"),
    ],
)
def test_an_output_path_is_claimed_before_any_work(tmp_path, make, kind, says):
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ConfigError, match=says):
        claim_output(make(tmp_path), "--out", kind)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file", "fifo"]


def test_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as for a read-only mount
    with pytest.raises(ConfigError, match="is not writable"):
        claim_output(tmp_path / "new" / "out.json", "--json")


def test_a_new_path_below_a_writable_directory_is_fine_and_not_created(tmp_path):
    path = claim_output(tmp_path / "a" / "b" / "out.json", "--json")
    assert path == tmp_path / "a" / "b" / "out.json" and not (tmp_path / "a").exists()


def test_os_errors_become_one_sentence_with_the_right_exit_code():
    full = os_error(OSError(errno.ENOSPC, "No space left on device", "/data/x.json"))
    assert isinstance(full, DiskFullError) and full.exit_code == 4
    assert "/data/x.json" in str(full) and "the disk is full" in str(full)
    readonly = os_error(OSError(errno.EROFS, "Read-only file system", "/ro/x"))
    assert isinstance(readonly, ConfigError) and "read-only" in str(readonly)


def test_a_command_that_meets_a_full_disk_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    from binary_nn import summary

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(summary, "write_json_atomic", full)
    assert summary.main(["--hidden", "8", "--json", str(tmp_path / "s.json")]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full" in err and "s.json" in err


def test_an_atomic_write_names_the_file_it_could_not_write(tmp_path, monkeypatch):
    def no_space(fd, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as caught:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert caught.value.filename == str(tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_metrics_line_that_fails_to_write_leaves_the_file_parseable(tmp_path):
    directory = RunDirectory(tmp_path / "run")
    directory.open()
    directory.log_batch({"batch/loss": 1.0}, 1, 1)

    class ShortWrites:  # a disk that fills up in the middle of a line
        def __init__(self, real):
            self.real = real

        def write(self, data):
            return self.real.write(data[:5])

        def __getattr__(self, name):
            return getattr(self.real, name)

    directory._metrics = ShortWrites(directory._metrics)
    with pytest.raises(OSError):
        directory.log_batch({"batch/loss": 2.0}, 1, 2)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1]
    directory.close()


def test_json_readers_check_the_file_before_reading(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_json(tmp_path / "fifo.json", "a run's config.json")  # would block if opened
    with pytest.raises(ConfigError, match=r"not readable as a run's config\.json"):
        read_json(tmp_path / "bad.json", "a run's config.json")
    for name in ("fifo.json", "list.json", "bad.json", "missing.json"):
        assert read_json_object(tmp_path / name) is None


def test_a_dataset_file_that_is_not_regular_is_not_hashed(tmp_path):
    os.mkfifo(tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="not a regular file"):
        sha256_of(tmp_path / "train-images-idx3-ubyte.gz")
