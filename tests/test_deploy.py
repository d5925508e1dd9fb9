"""Export, the packed engine and the C model against the float64 evaluation of a checkpoint."""

import shutil
import subprocess

import numpy as np
import pytest

from binary_nn.data import load_dataset
from binary_nn.deploy.packed import load_packed, pack_network
from binary_nn.export import main as export_main
from binary_nn.inference import Engine
from binary_nn.nn import classifier
from binary_nn.nn.kernels.bits import pack_bits, unpack_bits
from binary_nn.predict import integer_pixels
from binary_nn.predict import main as predict_main
from binary_nn.run.checkpoint import network_from_checkpoint
from binary_nn.run.probes import predict as float_predict
from binary_nn.train import main as train_main

FULLY_BINARY = {
    "bn+signsat": ["--bn", "--hidden-act", "signsat"],
    "sign": ["--hidden-act", "sign"],
    "bn+signsat+binarize_last": ["--bn", "--hidden-act", "signsat", "--binarize_last"],
    "sn+sign+binarize_last": ["--sn", "--hidden-act", "sign", "--binarize_last"],
}
MIXED = {"bn+tanh": ["--bn", "--hidden-act", "tanh"]}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One short DFA run per variant, saved."""
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for name, flags in {**FULLY_BINARY, **MIXED}.items():
        path = root / f"{name}.npz"
        args = ["-m", "DFA", "-e", "3", "--hidden", "48,32", "--lr", "1e-3", "--binarize",
                "--seed", "3", "--out", str(root / name), "--save", str(path), *flags]  # fmt: skip
        assert train_main(args) == 0
        paths[name] = path
    return paths


def exported(checkpoint, out, fmt="npz"):
    assert export_main([str(checkpoint), "--out", str(out), "--format", fmt]) == 0
    return out


def reference(checkpoint, dataset):
    network, _ = network_from_checkpoint(checkpoint)  # float64
    return float_predict(network, dataset, "test")


def test_bits_pack_and_unpack(rng):
    signs = np.where(rng.random((5, 130)) > 0.5, 1, -1)
    words = pack_bits(signs, pad=1)
    assert words.shape == (5, 3) and words.dtype == np.uint64
    np.testing.assert_array_equal(unpack_bits(words, 130), signs)
    assert int(words[0, 2]) >> 2 == (1 << 62) - 1  # padding bits set as asked
    assert int(pack_bits(np.ones((1, 3)), pad=0)[0, 0]) == 0b111


@pytest.mark.parametrize("name", list(FULLY_BINARY) + list(MIXED))
def test_packed_engine_reproduces_the_float64_network(
    name, checkpoints, digits, tmp_path, kernel_backend
):
    model = load_packed(exported(checkpoints[name], tmp_path) / "model.npz")
    assert model.fully_binary == (name in FULLY_BINARY and "binarize_last" in name)
    pixels = integer_pixels(digits.x_test, model)
    np.testing.assert_array_equal(
        Engine(model).predict(pixels), reference(checkpoints[name], digits)
    )
    # small batches take the integer loop for the pixel layer: the same classes
    np.testing.assert_array_equal(
        Engine(model).predict(pixels[:5]), reference(checkpoints[name], digits)[:5]
    )


def test_negative_gamma_flips_the_threshold_direction(rng):
    network = classifier(6, [8], 3, batch_norm=True, binarize=True, binarize_last=True,
                  hidden_activation="sign", dtype=np.float64, rng=rng)  # fmt: skip
    bn = network.hidden_blocks[0].layers[1]
    bn.gamma.value[:] = rng.uniform(-2, 2, 8)
    bn.gamma.value[:4] = -np.abs(bn.gamma.value[:4])
    bn.beta.value[:] = rng.normal(size=8)
    bn.running_mean[:] = rng.normal(size=8) * 3
    bn.running_var[:] = rng.uniform(0.5, 4, 8)
    model = pack_network(network, input_divisor=127.5)
    assert list(model.layers[0].direction[:4]) == [-1] * 4
    pixels = rng.integers(0, 256, (400, 6)).astype(np.uint8)
    expected = network.forward(pixels / 127.5 - 1, train=False).argmax(axis=1)
    np.testing.assert_array_equal(Engine(model).predict(pixels), expected)


def test_model_file_is_small_and_holds_no_objects(checkpoints, tmp_path):
    path = exported(checkpoints["bn+signsat+binarize_last"], tmp_path) / "model.npz"
    with np.load(path, allow_pickle=False) as archive:  # no pickled objects anywhere
        assert all(archive[key].dtype != object for key in archive.files)
        assert "format" in str(archive["header"])
    float32_bytes = 4 * (64 * 48 + 48 * 32 + 32 * 10)
    model = load_packed(path)
    # 1 bit per weight, int32 thresholds, int8 directions
    assert model.nbytes() == (48 + 32 * 1 + 10 * 1) * 8 + (48 + 32) * 5 + 10 * 16
    assert model.nbytes() < float32_bytes / 15  # 64-wide words: padding weighs in here
    assert path.stat().st_size < model.nbytes() + 5000  # the npz's own headers


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("name", ["bn+signsat+binarize_last", "bn+signsat"])
def test_generated_c_gives_the_same_classes(name, checkpoints, digits, tmp_path):
    out = exported(checkpoints[name], tmp_path / "c", fmt="c")
    source = (out / "model.c").read_text()
    assert "#include <" not in source and "malloc" not in source
    header = (out / "model.h").read_text()
    assert "#include <stdint.h>" in header and "int bnn_predict(const uint8_t *pixels);" in header
    if "binarize_last" in name:  # fully binary: integers only
        assert "float" not in source and "double" not in source
    model = load_packed(exported(checkpoints[name], tmp_path / "npz") / "model.npz")
    images = np.concatenate([digits.x_train, digits.x_test])[:1000]
    pixels = integer_pixels(images, model)
    (tmp_path / "pixels.bin").write_bytes(pixels.tobytes())
    driver = tmp_path / "driver.c"
    driver.write_text(
        '#include <stdio.h>\n#include "model.h"\n'
        "int main(void) {\n"
        "    static uint8_t image[BNN_INPUTS];\n"
        "    while (fread(image, 1, BNN_INPUTS, stdin) == BNN_INPUTS) {\n"
        '        printf("%d\\n", bnn_predict(image));\n'
        "    }\n    return 0;\n}\n"
    )
    binary = tmp_path / "driver"
    subprocess.run(
        ["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", f"-I{out}",
         str(driver), str(out / "model.c"), "-o", str(binary)],
        check=True,
    )  # fmt: skip
    result = subprocess.run([str(binary)], input=pixels.tobytes(), capture_output=True, check=True)
    from_c = np.array(result.stdout.split(), dtype=int)
    network, _ = network_from_checkpoint(checkpoints[name])
    expected = network.forward(digits.scale(images, network.dtype), train=False).argmax(axis=1)
    np.testing.assert_array_equal(from_c, expected)
    np.testing.assert_array_equal(Engine(model).predict(pixels), expected)


def test_c_refuses_a_net_it_cannot_hold_in_one_sentence(checkpoints, tmp_path, capsys):
    args = [str(checkpoints["bn+tanh"]), "--out", str(tmp_path), "--format", "c"]
    assert export_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "export it as npz" in err


def test_corrupt_or_truncated_models_are_refused(checkpoints, tmp_path, capsys):
    path = exported(checkpoints["sign"], tmp_path) / "model.npz"
    data = path.read_bytes()
    cases = {
        "truncated.npz": data[: len(data) // 2],
        "garbage.npz": b"not a zip at all" * 10,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert predict_main([str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "not a readable packed model" in err, err
    np.savez(tmp_path / "other.npz", header=np.array('{"format": "something else"}'))
    assert predict_main([str(tmp_path / "other.npz")]) == 2
    assert "is not a packed model of format" in capsys.readouterr().err
    assert predict_main([str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_predict_command_reports_and_saves(checkpoints, digits, tmp_path, capsys):
    path = exported(checkpoints["bn+signsat"], tmp_path) / "model.npz"
    saved = tmp_path / "classes.npy"
    assert predict_main([str(path), "--dataset", "digits", "--predictions", str(saved)]) == 0
    printed = capsys.readouterr().out
    assert "360 test images: accuracy" in printed and "images/s" in printed
    np.testing.assert_array_equal(np.load(saved), reference(checkpoints["bn+signsat"], digits))


def test_predict_on_a_training_checkpoint_says_to_export_it(checkpoints, capsys):
    from binary_nn.predict import main as predict_main

    name = next(iter(checkpoints))
    assert predict_main([str(checkpoints[name])]) == 2
    err = capsys.readouterr().err
    assert "is a training checkpoint, not a packed model: export it first" in err
    assert err.count("\n") == 1


CONVNETS = {
    "binary convnet": ["--conv", "8c3,mp2,16c3", "--bn", "--binarize", "--binarize_last",
                       "--hidden-act", "signsat"],
    "binary convnet, real scores, sn": ["--conv", "6c3,mp2", "--sn", "--bn", "--binarize",
                                        "--hidden-act", "sign"],
    "real convnet": ["--conv", "6c3,mp2", "--bn", "--hidden-act", "tanh"],
}  # fmt: skip


@pytest.fixture(scope="module")
def convnets(tmp_path_factory):
    root = tmp_path_factory.mktemp("convnets")
    paths = {}
    for k, (name, flags) in enumerate(CONVNETS.items()):
        path = root / f"{k}.npz"
        args = ["--optimizer", "adam", "--lr", "3e-3", "-e", "3", "--hidden", "32", "--seed",
                "2", "--out", str(root / str(k)), "--save", str(path), *flags]  # fmt: skip
        assert train_main(args) == 0
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", list(CONVNETS))
def test_packed_convnets_reproduce_the_float64_network(
    name, convnets, digits, tmp_path, kernel_backend
):
    model = load_packed(exported(convnets[name], tmp_path) / "model.npz")
    assert len(model.convs) >= 1
    assert model.convs[0].kind == ("float" if name == "real convnet" else "pixels")
    pixels = integer_pixels(digits.x_test, model)
    np.testing.assert_array_equal(Engine(model).predict(pixels), reference(convnets[name], digits))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("name", ["binary convnet", "binary convnet, real scores, sn"])
def test_c_convnets_give_the_float64_networks_classes(name, convnets, digits, tmp_path):
    out = exported(convnets[name], tmp_path / "c", "c")
    source = (out / "model.c").read_text()
    if name == "binary convnet":
        assert "float" not in source and "double" not in source
    binary = tmp_path / "bnn"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror",
                    f"-I{out}", str(out / "example.c"), str(out / "model.c"), "-o",
                    str(binary)], check=True)  # fmt: skip
    model = load_packed(exported(convnets[name], tmp_path / "npz") / "model.npz")
    pixels = integer_pixels(digits.x_test, model)
    result = subprocess.run([str(binary)], input=pixels.tobytes(), capture_output=True, check=True)
    np.testing.assert_array_equal(
        np.array(result.stdout.split(), dtype=int), reference(convnets[name], digits)
    )
    header = (out / "model.h").read_text()
    ram = int(header.split("#define BNN_RAM_BYTES ")[1].split()[0])
    assert ram < 1024  # bits per position, no feature map of integers


def test_c_refuses_a_real_convnet_in_one_sentence(convnets, tmp_path, capsys):
    args = [str(convnets["real convnet"]), "--out", str(tmp_path), "--format", "c"]
    assert export_main(args) == 2
    err = capsys.readouterr().err
    assert "binary convolutions with sign activations" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda a: a.update({"layer.0.weights": a["layer.0.weights"].astype(np.float64)}),
         "weights are float64, not uint64"),
        (lambda a: a.update({"layer.0.threshold": np.full(a["layer.0.threshold"].shape, np.nan)}),
         "threshold is float64, not integer"),
        (lambda a: a.update({"layer.0.direction": a["layer.0.direction"] * 3}),
         "direction holds values other than -1 and +1"),
        (lambda a: a.update({"header": np.array("[]")}), "its header is not an object"),
        (lambda a: a.update({"header": np.array("null")}), "its header is not an object"),
    ],
)  # fmt: skip
def test_a_tampered_packed_model_is_refused_not_predicted_with(tmp_path, capsys, change, says):
    from binary_nn.export import main as export_main
    from binary_nn.predict import main as predict_main
    from binary_nn.train import main as train_main

    model = tmp_path / "m.npz"
    args = ["--bn", "--binarize", "--binarize_last", "--hidden-act", "signsat", "--hidden", "32",
            "-e", "1", "--out", str(tmp_path / "r"), "--save", str(model)]  # fmt: skip
    assert train_main(args) == 0
    assert export_main([str(model), "--out", str(tmp_path / "p")]) == 0
    packed = tmp_path / "p" / "model.npz"
    with np.load(packed) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    np.savez(packed, **arrays)
    capsys.readouterr()
    assert predict_main([str(packed), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("args", "tolerance"),
    [
        (["--bn", "--binarize", "--binarize_last", "--hidden-act", "signsat",
          "--hidden", "64,32"], 1e-12),
        (["--conv", "8c3,mp2,16c3", "--hidden", "32", "--bn", "--binarize", "--sn",
          "--hidden-act", "signsat"], 1e-12),
        (["--conv", "4c3,mp2", "--hidden", "16", "--bn"], 1e-6),  # a float32 Conv
    ],
    ids=["binary mlp", "binary convnet", "real convnet"],
)  # fmt: skip
def test_the_onnx_graph_computes_the_float64_network(tmp_path, capsys, args, tolerance):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from binary_nn import load_network, predict_classes, run_dataset
    from binary_nn.export import main as export_main
    from binary_nn.train import main as train_main

    model = tmp_path / "m.npz"
    assert train_main([*args, "-e", "2", "--seed", "3", "--lr", "1e-3", "--out",
                       str(tmp_path / "r"), "--save", str(model)]) == 0  # fmt: skip
    assert export_main([str(model), "--out", str(tmp_path / "x"), "--format", "onnx"]) == 0
    assert "standard operators" in capsys.readouterr().out
    network, config = load_network(model)
    data = run_dataset(config)
    session = ort.InferenceSession(str(tmp_path / "x" / "model.onnx"))
    scores, classes = session.run(None, {"pixels": data.x_test})
    expected = network.forward(data.scale(data.x_test, np.float64), train=False)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=tolerance)
    assert (classes == predict_classes(network, data, "test")).all()
