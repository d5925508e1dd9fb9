"""Datasets: parsing, verification, and the real download path against a local HTTP server."""

import gzip
import io
import pickle
import re
import tarfile

import numpy as np
import pytest
from datafiles import (
    FileServer,
    cifar_batch,
    closed_port_url,
    fileset,
    idx_bytes,
    mini_cifar_tarball,
    mini_mnist,
    use_test_mnist,
)

from binary_nn.data import DATASETS, load_dataset
from binary_nn.data import __main__ as data_cli
from binary_nn.data.formats import parse_cifar_batch, parse_idx, read_cifar, read_idx_gz
from binary_nn.data.remote import data_home, ensure_files
from binary_nn.data.sources import idx_loader, load_cifar10
from binary_nn.errors import DataError
from binary_nn.train import main as train_main


@pytest.fixture
def mnist_files():
    return mini_mnist(np.random.default_rng(0))


def no_temporaries(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_idx_parser_reads_header_and_values():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = gzip.decompress(idx_bytes(array))
    np.testing.assert_array_equal(parse_idx(raw, "x"), array)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"\x01\x02" + b[2:], "bad magic number"),
        (lambda b: b[:-5], "truncated or corrupt"),
        (lambda b: b + b"\x00", "truncated or corrupt"),
        (lambda b: b[:6], "header is incomplete"),
    ],
)
def test_idx_parser_rejects_bad_files_naming_them(mutate, message):
    raw = gzip.decompress(idx_bytes(np.zeros((2, 3, 4), np.uint8)))
    with pytest.raises(DataError, match=message) as info:
        parse_idx(mutate(raw), "some/file.idx")
    assert "some/file.idx" in str(info.value)


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(idx_bytes(np.zeros((50, 28, 28)))[:-20])
    with pytest.raises(DataError, match=re.escape(str(path))):
        read_idx_gz(path)


def test_download_success_then_offline_reuse(tmp_path, monkeypatch, mnist_files):
    with FileServer(mnist_files) as server:
        use_test_mnist(monkeypatch, mnist_files, [server.url("good")])
        dataset = load_dataset("mnist", tmp_path)
        assert len(server.requests) == 4
    # images keep their shape, channels last
    assert dataset.x_train.shape == (60, 28, 28, 1) and dataset.x_train.dtype == np.uint8
    assert dataset.input_shape == (28, 28, 1) and dataset.n_features == 784
    assert dataset.n_classes == 10
    np.testing.assert_array_equal(dataset.y_test, np.arange(20) % 10)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(mnist_files)
    # the server is gone now: the cached files are used without any network access
    again = load_dataset("MNIST", tmp_path)
    np.testing.assert_array_equal(again.x_train, dataset.x_train)
    scaled = again.scale(again.x_train[:2], np.float32)
    np.testing.assert_allclose(scaled, again.x_train[:2] / 127.5 - 1, rtol=1e-6)


def test_checksum_mismatch_names_file_and_hashes_and_caches_nothing(
    tmp_path, monkeypatch, mnist_files
):
    with FileServer(mnist_files) as server:
        fs = use_test_mnist(monkeypatch, mnist_files, [server.url("corrupt")])
        with pytest.raises(DataError) as info:
            load_dataset("MNIST", tmp_path)
    message = str(info.value)
    first = fs.files[0]
    assert "checksum mismatch for train-images-idx3-ubyte.gz" in message
    assert f"expected sha256 {first.sha256}, got " in message
    assert "python -m binary_nn.data fetch MNIST" in message
    assert no_temporaries(tmp_path / "mnist") == []


def test_a_failing_mirror_fails_over_to_the_next(tmp_path, monkeypatch, mnist_files):
    with FileServer(mnist_files) as server:
        mirrors = [closed_port_url(), server.url("broken"), server.url("good")]
        use_test_mnist(monkeypatch, mnist_files, mirrors)
        dataset = load_dataset("MNIST", tmp_path)
        assert sum(r.startswith("/broken/") for r in server.requests) == 4
    assert len(dataset.y_train) == 60


def test_an_interrupted_transfer_never_lands_under_the_final_name(
    tmp_path, monkeypatch, mnist_files
):
    with FileServer(mnist_files) as server:
        use_test_mnist(monkeypatch, mnist_files, [server.url("truncated")])
        with pytest.raises(DataError, match="no mirror gave"):
            load_dataset("MNIST", tmp_path)
        assert no_temporaries(tmp_path / "mnist") == []
        # the same files from a mirror that completes the transfer
        use_test_mnist(monkeypatch, mnist_files, [server.url("truncated"), server.url("good")])
        assert len(load_dataset("MNIST", tmp_path).y_test) == 20


def test_offline_without_local_files_names_files_directory_and_fetch(
    tmp_path, monkeypatch, mnist_files
):
    use_test_mnist(monkeypatch, mnist_files, [closed_port_url()])
    with pytest.raises(DataError) as info:
        load_dataset("MNIST", tmp_path / "data")
    message = str(info.value)
    for name in mnist_files:
        assert name in message
    assert str(tmp_path / "data") in message
    assert f"python -m binary_nn.data fetch MNIST --data-dir {tmp_path / 'data'}" in message


def test_offline_with_official_files_in_the_directory_itself(tmp_path, monkeypatch, mnist_files):
    for name, body in mnist_files.items():
        (tmp_path / name).write_bytes(body)
    use_test_mnist(monkeypatch, mnist_files, [closed_port_url()])
    assert len(load_dataset("MNIST", tmp_path).y_train) == 60


def test_a_corrupt_local_file_is_never_used(tmp_path, monkeypatch, mnist_files):
    fs = use_test_mnist(monkeypatch, mnist_files, [closed_port_url()])
    (tmp_path / "mnist").mkdir()
    for name, body in mnist_files.items():
        (tmp_path / "mnist" / name).write_bytes(body)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"checksum mismatch: .* expected [0-9a-f]{64}"):
        ensure_files(fs, tmp_path, allow_download=False)
    # training says "checksum mismatch" too (not "not found"), even where it may download
    with pytest.raises(DataError, match=r"^checksum mismatch: .*t10k-labels-idx1-ubyte\.gz"):
        load_dataset("MNIST", tmp_path)


def test_a_missing_dataset_without_network_is_one_line_and_leaves_no_folders(
    tmp_path, monkeypatch, mnist_files, capsys
):
    use_test_mnist(monkeypatch, mnist_files, [closed_port_url(), closed_port_url()])
    root = tmp_path / "data"
    with pytest.raises(DataError) as info:
        load_dataset("MNIST", root)
    message = str(info.value)
    assert "no mirror gave train-images-idx3-ubyte.gz (2 mirrors, ConnectionError)" in message
    assert "\n" not in message and len(message) < 500
    assert not root.exists()  # no empty folders behind
    assert "Downloading data from" not in capsys.readouterr().err


def test_fetch_and_verify_commands(tmp_path, monkeypatch, mnist_files, capsys):
    with FileServer(mnist_files) as server:
        use_test_mnist(monkeypatch, mnist_files, [server.url("good")])
        assert data_cli.main(["fetch", "mnist", "--data-dir", str(tmp_path)]) == 0
    assert data_cli.main(["verify", "MNIST", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") >= 8 and "MNIST: 60 training and 20 test examples" in out
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"bad")
    assert data_cli.main(["verify", "MNIST", "--data-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.out and "does not verify" in captured.err
    assert data_cli.main(["verify", "imagenet"]) == 2
    assert "choose one of: digits, MNIST, FASHION_MNIST, CIFAR10" in capsys.readouterr().err
    assert data_cli.main(["list", "--data-dir", str(tmp_path)]) == 0
    assert "FASHION_MNIST" in capsys.readouterr().out


def test_training_on_a_downloaded_dataset_through_the_cli(tmp_path, monkeypatch, mnist_files):
    with FileServer(mnist_files) as server:
        use_test_mnist(monkeypatch, mnist_files, [server.url("good")])
        args = [
            "--dataset",
            "MNIST",
            "--data-dir",
            str(tmp_path / "data"),
            "-m",
            "DRTP",
            "-e",
            "2",
            "-b",
            "20",
            "--hidden",
            "32",
            "--out",
            str(tmp_path / "run"),
        ]
        assert train_main(args) == 0


def test_data_directory_comes_from_flag_then_environment_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BINARY_NN_DATA", str(tmp_path / "env"))
    assert data_home(tmp_path / "flag") == tmp_path / "flag"
    assert data_home() == tmp_path / "env"
    monkeypatch.delenv("BINARY_NN_DATA")
    assert "binary_nn" in str(data_home())


def test_dataset_names_are_case_insensitive_with_aliases():
    for name in ("cifar", "CIFAR-10", "cifar10"):
        assert DATASETS.canonical(name) == "CIFAR10"
    assert DATASETS.canonical("fashion_mnist") == "FASHION_MNIST"


def test_cifar_tarball_download_and_layout(tmp_path, monkeypatch):
    tarball, contents = mini_cifar_tarball(np.random.default_rng(1))
    files = {"cifar-10-python.tar.gz": tarball}
    with FileServer(files) as server:
        fs = fileset("CIFAR10", "cifar10", files, [server.url("good")])
        monkeypatch.setattr("binary_nn.data.sources.CIFAR10_FILES", fs)
        dataset = load_dataset("cifar-10", tmp_path)
    assert dataset.x_train.shape == (40, 32, 32, 3) and dataset.x_test.shape == (8, 32, 32, 3)
    images, labels = contents["data_batch_2"]
    # stored as colour planes; kept channels last (R, G, B), as Keras hands them to the
    # original code, so that flattening gives its feature order
    expected = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    assert dataset.x_train.flags.c_contiguous
    np.testing.assert_array_equal(dataset.x_train[8:16], expected)
    np.testing.assert_array_equal(dataset.y_train[8:16], labels)
    # the extracted directory works offline too
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    x_train, _, _, _ = read_cifar(tmp_path / "extracted" / "cifar-10-batches-py")
    np.testing.assert_array_equal(x_train, dataset.x_train)
    assert len(load_cifar10(tmp_path / "extracted", False).y_test) == 8


def test_cifar_pickles_are_read_safely():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = pickle.dumps({b"data": Evil(), b"labels": [1]}, protocol=2)
    with pytest.raises(DataError, match=r"refusing to load .*print"):
        parse_cifar_batch(bad, "evil_batch")
    good, _, _ = cifar_batch(np.random.default_rng(0), 3)
    assert parse_cifar_batch(good, "ok")[0].shape == (3, 32, 32, 3)


def test_keras_mnist_npz_is_used_when_present(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 255, (30, 28, 28), dtype=np.uint8),
        y_train=np.arange(30) % 10,
        x_test=np.zeros((10, 28, 28), np.uint8),
        y_test=np.arange(10),
    )
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    import hashlib

    from binary_nn.data import sources

    keras = fileset("MNIST", "mnist", {"mnist.npz": path.read_bytes()}, [closed_port_url()])
    loader = idx_loader(sources.MNIST_FILES, keras)
    dataset = loader(tmp_path, False)
    assert dataset.x_train.shape == (30, 28, 28, 1)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == keras.files[0].sha256


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixel_scaling_is_the_float64_formula_rounded_to_the_dtype(dtype):
    from binary_nn.data.dataset import scale_pixels

    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = (values.astype(np.float64) / 127.5 - 1).astype(dtype)
    scaled = scale_pixels(values, dtype)
    assert scaled.dtype == dtype
    np.testing.assert_array_equal(scaled, expected)
    assert scaled.min() == -1 and scaled.max() == 1


def test_data_list_shows_whether_files_are_present_and_verified(
    tmp_path, monkeypatch, mnist_files, capsys
):
    use_test_mnist(monkeypatch, mnist_files, [closed_port_url()])
    (tmp_path / "mnist").mkdir()
    for name, body in list(mnist_files.items())[:2]:
        (tmp_path / "mnist" / name).write_bytes(body)
    assert data_cli.main(["list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "partial (2 of 4)" in out and "embedded" in out
    for name, body in mnist_files.items():
        (tmp_path / "mnist" / name).write_bytes(body)
    assert data_cli.main(["list", "--data-dir", str(tmp_path)]) == 0
    assert "present, verified" in capsys.readouterr().out
    (tmp_path / "mnist" / name).write_bytes(b"bad")
    assert data_cli.main(["list", "--data-dir", str(tmp_path)]) == 0
    assert "checksum mismatch" in capsys.readouterr().out
