"""Bad input gets one clear sentence naming the flag or key, exit code 2 and no traceback."""

import io
import subprocess
import sys

import numpy as np
import pytest

from binary_nn.train import main

CASES = [
    (["-m", "SGD"], "-m/--method", "GD, DFA, DRTP"),
    (["--hidden-act", "relu"], "--hidden-act", "tanh, sign, signsat"),
    (["--last-act", "softmax"], "--last-act", "tanh"),
    (["--weight-ste", "clip"], "--weight-ste", "identity, sat, tanh"),
    (["-d", "imagenet"], "-d/--dataset", "digits"),
    (["--hidden", "700,,500"], "--hidden", "positive integers"),
    (["--hidden", "0"], "--hidden", "positive integers"),
    (["--hidden", "-3"], "--hidden", "positive integers"),
    (["--lr", "0"], "--lr", "> 0"),
    (["--lr=-1e-3"], "--lr", "> 0"),
    (["--lr", "fast"], "--lr", "a finite number > 0"),
    (["--bogus"], "unrecognized arguments: --bogus", "see --help"),
    (["-b", "0"], "-b/--batchsize", ">= 1"),
    (["-b", "5000"], "-b/--batchsize", "larger than the training set"),
    (["-e", "-1"], "-e/--epochs", ">= 0"),
    (["--init", "0"], "--init", "in (0, 1e+06]"),
    (["--dtype", "float16"], "--dtype", "float32"),
    (["--load", "/nonexistent/ck.npz"], "--load", "does not exist"),
    (["-d", "/nonexistent/data.npz"], "/nonexistent/data.npz", "does not exist"),
]


@pytest.mark.parametrize(("args", "names", "allowed"), CASES)
def test_bad_flag_values_give_one_sentence_and_exit_2(args, names, allowed, tmp_path, capsys):
    code = main(["-e", "1", "--hidden", "8", "--out", str(tmp_path / "r"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert names in err and allowed in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_bad_input_through_a_real_process_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "binary_nn.train", "--hidden", "700,,500"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "--hidden" in result.stderr


def test_corrupt_or_incomplete_npz_names_the_problem(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip archive")
    assert main(["-d", str(corrupt), "-e", "1", "--hidden", "4"]) == 2
    err = capsys.readouterr().err
    assert "is not an .npz archive" in err and "allow_pickle" not in err
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((4, 3)), y_train=np.zeros(4, int))
    assert main(["-d", str(partial), "-e", "1", "--hidden", "4"]) == 2
    assert "lacks the array(s) x_test, y_test" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00" * 10)
    assert main(["-e", "1", "--hidden", "4", "--load", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "is not an .npz archive; give a checkpoint .npz written by binary_nn" in err
    assert "allow_pickle" not in err and err.count("\n") == 1


def test_user_npz_with_uint8_images_is_scaled_and_trained(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    images = rng.integers(0, 60, (300, 12))
    for j in range(4):  # class c lights up features 4c .. 4c+3
        images[np.arange(300), 4 * labels + j] += 180
    images = images.astype(np.uint8)
    path = tmp_path / "toy.npz"
    np.savez(
        path, x_train=images[:240], y_train=labels[:240], x_test=images[240:], y_test=labels[240:]
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "-d",
                str(path),
                "-e",
                "5",
                "--hidden",
                "16",
                "--lr",
                "1e-3",
                "-b",
                "20",
                "--seed",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    import json

    config = json.loads((out / "config.json").read_text())
    assert config["n_classes"] == 3 and config["n_features"] == 12
    assert json.loads((out / "summary.json").read_text())["test/accuracy"] > 0.9


def _huge_header_npz(path, key="x_train", beside=None):
    """An .npz whose member ``key`` declares a 10**12-element float64 array (8 TB) in its
    header but holds a few bytes (reading it would try to allocate the lot), beside the other
    members of the archive ``beside``."""
    import zipfile

    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(path, "w") as archive:
        if beside is not None:
            with zipfile.ZipFile(beside) as source:
                for info in source.infolist():
                    if info.filename != f"{key}.npy":
                        archive.writestr(info.filename, source.read(info))
        archive.writestr(f"{key}.npy", buffer.getvalue() + b"\0" * 64)


@pytest.fixture
def saved_model(tmp_path):
    path = tmp_path / "model.npz"
    assert (
        main(["-e", "1", "--hidden", "8", "--out", str(tmp_path / "r"), "--save", str(path)]) == 0
    )
    return path


def _rewritten(path, change):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("command", ["evaluate", "export", "predict", "load"])
def test_hostile_checkpoints_are_refused_in_one_sentence(tmp_path, capsys, saved_model, command):
    import json
    import os

    from binary_nn.evaluate import main as evaluate_main
    from binary_nn.export import main as export_main
    from binary_nn.predict import main as predict_main

    def attempt(path):
        if command == "evaluate":
            return evaluate_main([str(path)])
        if command == "export":
            return export_main([str(path), "--out", str(tmp_path / "e")])
        if command == "predict":
            return predict_main([str(path), "--dataset", "digits"])
        return main(["-e", "1", "--hidden", "8", "--load", str(path), "--out", str(tmp_path / "l")])

    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.npz"
    _huge_header_npz(huge, "linear.0.weight", beside=saved_model)
    configured = tmp_path / "configured.npz"
    configured.write_bytes(saved_model.read_bytes())

    def enormous_hidden(arrays):
        config = json.loads(str(arrays["config"]))
        arrays["config"] = np.array(json.dumps({**config, "hidden": [10**9]}))

    _rewritten(configured, enormous_hidden)
    text = tmp_path / "text.npz"
    text.write_bytes(saved_model.read_bytes())
    _rewritten(
        text,
        lambda arrays: arrays.update({"linear.0.weight": arrays["linear.0.weight"].astype(str)}),
    )
    cases = {fifo: "not a regular file", huge: "declares arrays of 8.0"}
    if command in ("evaluate", "export"):  # its configuration is checked against the headers
        cases[huge] = cases[configured] = "the checkpoint is damaged"
    if command in ("evaluate", "export", "load"):
        cases[text] = "not numbers" if command == "load" else "is damaged"
    for path, says in cases.items():
        capsys.readouterr()
        assert attempt(path) == 2, (path, says)
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1 and "Traceback" not in err, (path, err)


def test_a_dataset_npz_whose_header_declares_terabytes_is_refused(tmp_path, capsys):
    path = tmp_path / "data.npz"
    _huge_header_npz(path)
    assert main(["-d", str(path), "-e", "1", "--hidden", "4"]) == 2
    err = capsys.readouterr().err
    assert "declares arrays of 8.0 TB" in err and err.count("\n") == 1
