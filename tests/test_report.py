"""Reports from run directories of short real runs on digits, and from W&B CSV exports."""

import csv
import json

import pytest
import yaml

from binary_nn.experiments.campaign import main as repeat_main
from binary_nn.experiments.reporting import learning_curve, main, make_report

# the report needs the `report` extra; without it these tests skip
pytest.importorskip("pandas")
pytest.importorskip("scipy")
mpl_image = pytest.importorskip("matplotlib.image")

# two (init, lr) candidates per triple: lr 3e-4 learns digits in 3 epochs, 1e-7 does not
GRID = {
    "dataset": "digits",
    "fixed": {"hidden": "32", "epochs": 3, "init": 0.1},
    "settings": [
        {"method": m, "hidden_act": "tanh", "binarize": b, "lr": lr}
        for m in ("GD", "DFA")
        for b in (False, True)
        for lr in (3e-4, 1e-7)
    ],
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    settings = root / "grid.yaml"
    settings.write_text(yaml.safe_dump(GRID))
    # names collide across lr, so each lr goes into its own campaign directory
    for lr in (3e-4, 1e-7):
        part = dict(GRID, settings=[s for s in GRID["settings"] if s["lr"] == lr])
        path = root / f"grid-{lr}.yaml"
        path.write_text(yaml.safe_dump(part))
        assert (
            repeat_main(
                [
                    str(path),
                    "--seeds",
                    "1..3",
                    "--out",
                    str(root / "runs" / str(lr)),
                    "--no-progress",
                ]
            )
            == 0
        )
    return root / "runs"


def test_report_table_picks_the_best_setting_per_triple(campaign, tmp_path, capsys):
    assert main([str(campaign), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "report" / "grid_search.md").read_text()
    assert table in printed
    assert "## digits without Batch Normalization" in table
    rows = [
        line for line in table.splitlines() if line.startswith("| gd") or line.startswith("| dfa")
    ]
    assert len(rows) == 4  # (GD, DFA) x (real, binary), tanh
    assert [r.split("|")[1].strip() for r in rows] == ["dfa", "gd", "dfa", "gd"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[4] == "3.0E-4"  # the learning rate that learns wins on train/accuracy
        assert float(cells[5]) > 0.3 and cells[-1] == "3"


def test_report_figures_and_summary_statistics(campaign, tmp_path):
    result = make_report([str(campaign)], tmp_path)
    for path in (*result["written"]["boxplots"], *result["written"]["curves"]):
        image = mpl_image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 300
        assert image.std() > 0.01  # something is drawn
    with open(tmp_path / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    dfa = next(r for r in rows if r["method"] == "DFA" and r["binarize"] == "False")
    assert int(dfa["n"]) == 3
    assert dfa["metric"] == "best/test/accuracy"  # the column names say what they average
    low, high = (
        float(dfa["best_test_accuracy_ci95_low"]),
        float(dfa["best_test_accuracy_ci95_high"]),
    )
    assert low <= float(dfa["best_test_accuracy_mean"]) <= high
    assert 0 <= float(dfa["vs_gd_p"]) <= 1
    gd = next(r for r in rows if r["method"] == "GD" and r["binarize"] == "False")
    assert gd["vs_gd_p"] == ""
    # what learning costs, from the runs' config.json
    cost = result["written"]["cost"].read_text()
    assert "# 64-32(tanh)-10(tanh)" in cost and "| DRTP (streaming) |" in cost
    # the alignment the runs measured: a figure and the final angles
    table_path, figure = result["written"]["alignment"]
    assert mpl_image.imread(figure).std() > 0.01
    table = table_path.read_text()
    assert "## digits DFA binary weights, tanh (epoch 3)" in table
    gd_rows = table.split("## digits GD real weights, tanh (epoch 3)")[1].split("##")[0]
    assert "| 0 | 0.0 | 0.0 +- 0.0 | - | - |" in gd_rows  # BP is aligned with itself


def test_killed_runs_are_listed_as_incomplete_not_a_crash(campaign, tmp_path):
    killed = campaign / "3e-7-killed" / "x" / "seed-1"
    killed.mkdir(parents=True)
    (killed / "config.json").write_text(json.dumps({"dataset": "digits", "method": "GD"}))
    result = make_report([str(campaign)], tmp_path)
    assert result["unfinished"] == [
        {"run_dir": str(killed), "reason": "incomplete (no summary.json)"}
    ]
    assert "incomplete (no summary.json)" in (tmp_path / "grid_search.md").read_text()


def test_compare_to_a_published_table(campaign, tmp_path):
    published = tmp_path / "published.md"
    published.write_text(
        "## digits without Batch Normalization\n\n"
        "| algorithm | activation | binary weights | initial value | learning rate "
        "| train/accuracy | test/accuracy | test/f1 |\n|---|---|---|---|---|---|---|---|\n"
        "| dfa | tanh | False | 0.1 | 1.0E-4 | 0.9000 | 0.8000 | 0.7000 |\n"
    )
    result = make_report([str(campaign)], tmp_path / "out", str(published))
    text = result["written"]["comparison"].read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| dfa")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "0.1 / 0.1" and cells[4] == "3.0E-4 / 1.0E-4"
    ours, rest = cells[5].split(" / ")
    assert rest.startswith("0.9000 (") and f"{float(ours) - 0.9:+.4f}" in rest


def test_wandb_csv_export_is_read_and_missing_columns_are_named(tmp_path, capsys):
    good = tmp_path / "export.csv"
    header = [
        "method",
        "hidden_act",
        "binarize",
        "init",
        "lr",
        "seed",
        "dataset",
        "bn",
        "train/accuracy",
        "test/accuracy",
        "test/f1",
    ]
    rows = [
        ["DFA", "tanh", False, 0.1, 1e-4, s, "MNIST", True, 0.9 + s / 100, 0.8, 0.79]
        for s in (2, 3)
    ]
    rows += [["GD", "tanh", False, 0.1, 1e-4, s, "MNIST", True, 0.95, 0.9, 0.89] for s in (2, 3)]
    with open(good, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    assert main([str(good), "--out", str(tmp_path / "r")]) == 0
    assert "## MNIST with Batch Normalization" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("method,lr\nGD,0.1\n")
    assert main([str(bad), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "lacks the column(s) hidden_act, binarize, init, train/accuracy, test/accuracy" in err


def test_an_empty_selection_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no completed runs found" in capsys.readouterr().err


def test_learning_curve_reads_the_epoch_lines_of_a_killed_run(tmp_path):
    # per-iteration lines, epoch lines (one has test accuracy), and a torn last line
    lines = [
        {"epoch": 1, "iteration": 1, "batch/loss": 0.5},
        {"epoch": 1, "iteration": 2, "train/loss": 0.4, "test/accuracy": 0.75},
        {"epoch": 2, "iteration": 3, "batch/loss": 0.3},
        {"epoch": 2, "iteration": 4, "best/test/accuracy": 0.75},
        {"epoch": 2, "iteration": 4, "test/accuracy": 0.8, "test/f1": 0.79},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"epoch": 3, "test/accuracy": 0.'
    (tmp_path / "metrics.jsonl").write_text(text)
    assert learning_curve(str(tmp_path)) == {1: 0.75, 2: 0.8}
    assert learning_curve(str(tmp_path / "missing")) == {}


def test_report_separates_architectures_and_epochs_and_counts_duplicated_seeds(tmp_path):
    from binary_nn.train import main as train_main

    runs = tmp_path / "runs"
    for name, flags in {
        "a": ["--hidden", "16", "-e", "1", "--seed", "1"],
        "b": ["--hidden", "16", "-e", "1", "--seed", "1"],  # the same seed again
        "c": ["--hidden", "32", "-e", "1", "--seed", "1"],
        "d": ["--hidden", "16", "-e", "2", "--seed", "1"],
    }.items():
        assert train_main([*flags, "--lr", "3e-4", "--out", str(runs / name)]) == 0
    result = make_report([str(runs)], tmp_path / "report")
    table = result["table"]
    assert table.count("## digits without Batch Normalization") == 3
    for heading in ("Hidden layers 16, 1 epochs.", "Hidden layers 32, 1 epochs.",
                    "Hidden layers 16, 2 epochs."):  # fmt: skip
        assert heading in table
    assert "| 2 (1 duplicated seeds) |" in table
    assert len(result["written"]["curves"]) == 3  # one figure per section, none overwritten


def test_report_keeps_conv_optimizer_and_loss_runs_apart_and_selects_on_validation(tmp_path):
    from binary_nn.train import main as train_main

    runs = tmp_path / "runs"
    base = ["--hidden", "16", "-e", "1", "--seed", "1", "--lr", "3e-4", "--val-split", "0.2"]
    for name, flags in {
        "mlp": [],
        "conv": ["--conv", "4c3"],
        "adam": ["--optimizer", "adam", "--lr", "1e-3"],
        "ce": ["--loss", "cross-entropy", "--last-act", "id"],
    }.items():
        assert train_main([*base, *flags, "--out", str(runs / name)]) == 0
    result = make_report([str(runs)], tmp_path / "report")
    table = result["table"]
    assert table.count("## digits without Batch Normalization") == 4  # four sections
    assert "conv 4c3" in table and "optimizer adam" in table and "loss cross-entropy" in table
    assert "selected on val/accuracy" in table  # every run held out a validation set


def test_runs_lists_status_filters_and_fits_100_columns(tmp_path, capsys, monkeypatch):
    from binary_nn.runs import main as runs_main
    from binary_nn.train import main as train_main

    root = tmp_path / "a-rather-long-directory-name-for-the-runs-of-this-test" / "runs"
    assert train_main(["--hidden", "8", "-e", "1", "--seed", "1", "--val-split", "0.2",
                       "--out", str(root / "gd")]) == 0  # fmt: skip
    assert train_main(["-m", "DFA", "--hidden", "8", "-e", "1", "--out", str(root / "dfa")]) == 0
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("[1, 2]")  # valid JSON, wrong shape
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "100")
    assert runs_main([str(root)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 4 and all(len(line) <= 100 for line in table)
    assert "| completed | digits | GD | real | tanh | 1/1 |" in out and " val |" in out
    assert "1 run directories with an unreadable config.json" in out
    assert runs_main([str(root), "--method", "dfa", "--status", "completed"]) == 0
    out = capsys.readouterr().out
    assert "| DFA |" in out and "| GD |" not in out and "(1 filtered out)" in out
    assert runs_main([str(root), "--wide"]) == 0
    assert "| sgd |" in capsys.readouterr().out


def test_damaged_runs_are_skipped_naming_the_run_and_why(campaign, tmp_path, capsys):
    import shutil

    from binary_nn.runs import main as runs_main

    root = tmp_path / "copy"
    shutil.copytree(campaign, root)
    runs = sorted(p.parent for p in root.rglob("summary.json"))

    def edit(path, **values):
        path.write_text(json.dumps({**json.loads(path.read_text()), **values}))

    edit(runs[0] / "summary.json", **{"test/accuracy": "high"})
    edit(runs[1] / "config.json", lr="fast")
    edit(runs[2] / "config.json", n_train="x")
    with (runs[3] / "metrics.jsonl").open("a") as metrics:  # a line without an epoch
        metrics.write(json.dumps({"test/accuracy": 0.5}) + "\n" + '["not", "a", "record"]\n')
    result = make_report([str(root)], tmp_path / "report")
    reasons = {u["run_dir"]: u["reason"] for u in result["unfinished"]}
    assert "summary.json holds test/accuracy = 'high'" in reasons[str(runs[0])]
    assert "--lr must be" in reasons[str(runs[1])]
    assert "n_train = 'x'" in reasons[str(runs[2])]
    assert result["runs"] == len(runs) - 3
    assert learning_curve(str(runs[3]))  # the bad lines are left out, the others read
    capsys.readouterr()
    assert runs_main([str(root), "--status", "damaged"]) == 0
    listed = capsys.readouterr().out
    assert "3 runs under" in listed and "high" not in listed
