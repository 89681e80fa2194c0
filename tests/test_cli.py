"""The command-line scripts and lstm_mnist.cli: quiet and instant, flags made from the config's
fields, one-line errors for bad input, and eval.py reproducing a run."""

import dataclasses
import json
import os
import time

import pytest

from helpers import ROOT, assert_one_line_error, run_script, write_mnist
from lstm_mnist import cli
from lstm_mnist.config import Config

SCRIPTS = ("train.py", "eval.py", "predict.py", "plot.py", "explain.py", "record_session.py",
           "bench.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_is_instant_and_prints_only_the_scripts_own_text(script):
    start = time.monotonic()
    result = run_script(script, "--help")
    elapsed = time.monotonic() - start
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"usage: {script} ")
    # --verbose lets TensorFlow talk: only scripts that load it offer it.
    assert ("--verbose" in result.stdout) == (script != "plot.py")
    assert elapsed < 1.0, f"{script} --help took {elapsed:.2f} s"


@pytest.mark.parametrize("script,needed", [
    ("train.py", []), ("eval.py", ["--checkpoint", "checkpoints/part1"]),
    ("predict.py", ["--checkpoint", "checkpoints/part1", "digit.png"]), ("plot.py", ["logs/part1"]),
    ("explain.py", ["--checkpoint", "checkpoints/part1", "--test-index", "7"])])
def test_a_bad_flag_is_instant_and_one_line(script, needed):
    start = time.monotonic()
    result = run_script(script, *needed, "--bogus", cwd=ROOT)
    elapsed = time.monotonic() - start
    assert_one_line_error(result, f"{script}: error: ", "--bogus", "(see --help)")
    assert result.returncode == 2 and result.stdout == ""
    assert elapsed < 1.0, f"{script} --bogus took {elapsed:.2f} s"


def _config_parser():
    parser = cli.ArgumentParser(prog="test")
    cli.add_config_arguments(parser)
    return parser


def test_every_config_field_is_a_flag_with_the_fields_help_text():
    actions = {action.dest: action for action in _config_parser()._actions}
    for field in dataclasses.fields(Config):
        action = actions[field.name]
        assert action.option_strings == ["--" + field.name.replace("_", "-")]
        assert action.help.startswith(field.metadata["help"]), field.name
        assert action.default is None  # not given: the config's own default applies
    assert actions["lr_schedule"].choices == ("constant", "cosine")
    assert "(default 128)" in actions["hidden"].help


@pytest.mark.parametrize("argv,changes", [
    ([], {}),
    (["--layers", "2"], {"layers": 2}),
    (["--layers", "2", "--hidden", "64"], {"layers": 2, "hidden": (64, 64)}),
    (["--hidden", "64,32", "--layers", "2", "--bidirectional", "--crop", "--lr", "0.01",
      "--lr-schedule", "constant", "--head-hidden", "8"],
     {"layers": 2, "hidden": (64, 32), "bidirectional": True, "crop": True, "lr": 0.01,
      "lr_schedule": "constant", "head_hidden": 8}),
    (["--lstm", "textbook"], {"lstm": "textbook"}),
])
def test_flags_make_the_config_they_name(argv, changes):
    args = _config_parser().parse_args(argv)
    assert cli.config_changes(args) == changes
    assert cli.config_from_args(args) == Config(**changes)


@pytest.mark.parametrize("args,fragment", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--layers", "0"], "layers must be an integer in 1..64"),
    (["--layers", "2", "--hidden", "64,32,16"], "hidden gives 3 sizes for 2 layers"),
    (["--hidden", "0"], "expected comma-separated positive integers"),
    (["--hidden", "abc"], "expected comma-separated positive integers"),
    (["--hidden=-8"], "expected comma-separated positive integers"),
    (["--layers", "2", "--hidden", "64,0"], "expected comma-separated positive integers"),
    (["--batch-size", "0"], "batch_size must be an integer in 1.."),
    (["--lr", "-1"], "learning rate must be > 0"),
    (["--dropout", "1"], "dropout is a drop probability in [0, 1)"),
    (["--dropout", "-0.1"], "dropout is a drop probability in [0, 1)"),
    (["--crop-min", "20", "--crop-max", "30"], "crop bounds must satisfy"),
    (["--crop-min", "0"], "crop bounds must satisfy"),
    (["--crop-min", "27", "--crop-max", "25"], "crop bounds must satisfy"),
    (["--epochs", "x"], "argument --epochs: invalid int value"),
    (["--lstm", "quick"], "argument --lstm: invalid choice: 'quick'"),
    pytest.param(["--resume", "nowhere"], "nowhere: no such run checkpoint folder",
                 marks=pytest.mark.slow),  # --resume imports TensorFlow before reading the config
])
def test_train_rejects_bad_flags_with_one_line(tmp_path, args, fragment):
    result = run_script("train.py", *args, "--logdir", str(tmp_path / "logs"), cwd=tmp_path)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_train_rejects_corrupt_data_and_writes_nothing(tmp_path):
    write_mnist(tmp_path / "data")
    result = run_script("train.py", "--data-dir", str(tmp_path / "data"), "--logdir",
                        str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck"))
    assert_one_line_error(result, "checksum mismatch")
    assert not (tmp_path / "logs").exists() and not (tmp_path / "ck").exists()


@pytest.mark.slow
def test_tiny_textbook_run_then_eval_under_both_lstms_reproduces_the_logged_results(tmp_path):
    common = ["--logdir", str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck")]
    result = run_script("train.py", "--hidden", "8", "--head-hidden", "16", "--epochs", "2",
                        "--train-subset", "300", "--run-name", "tiny", "--lstm", "textbook",
                        *common)
    assert result.returncode == 0, result.stderr
    logs = tmp_path / "logs" / "tiny"
    for name in ("metrics.csv", "train.log", "config.json", "results.json"):
        assert (logs / name).stat().st_size > 0
    assert os.listdir(logs / "train") and os.listdir(logs / "validation")
    logged = json.loads((logs / "results.json").read_text())
    for config_file in (logs / "config.json", tmp_path / "ck" / "tiny" / "config.json"):
        assert json.loads(config_file.read_text())["config"]["lstm"] == "textbook"

    from lstm_mnist.evaluate import evaluate_checkpoint
    evaluated = run_script("eval.py", "--checkpoint", str(tmp_path / "ck" / "tiny"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    # The implementation that trained it (the script), and the other one.
    for numbers in (json.loads(evaluated.stdout),
                    evaluate_checkpoint(str(tmp_path / "ck" / "tiny"), lstm="fast")):
        assert numbers["checkpoint"] == logged["checkpoint"]
        for key in ("validation_error", "test_error", "validation_accuracy", "test_accuracy"):
            assert numbers[key] == pytest.approx(logged[key], abs=1e-9), key

    # A config that no longer matches the checkpoint's variables is refused in one line.
    config_path = tmp_path / "ck" / "tiny" / "config.json"
    document = json.loads(config_path.read_text())
    document["config"]["hidden"] = [9]
    config_path.write_text(json.dumps(document))
    mismatch = run_script("eval.py", "--checkpoint", str(tmp_path / "ck" / "tiny"))
    assert_one_line_error(mismatch, "does not match its config", "lstm/layer_0/fw/w_x")

    # The same run name again is refused, and the first run is left as it was.
    again = run_script("train.py", "--epochs", "1", "--run-name", "tiny", *common)
    assert_one_line_error(again, "already exists")
    assert json.loads((logs / "results.json").read_text()) == logged


@pytest.mark.parametrize("flag", ["--logdir", "--checkpoint-dir"])
@pytest.mark.slow
def test_train_rejects_an_unwritable_folder(tmp_path, flag):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_script("train.py", "--epochs", "1", flag, str(blocker / "runs"), cwd=tmp_path)
    assert_one_line_error(result, "cannot create folder")
    assert blocker.read_text() == "not a folder"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("make,fragment", [
    (lambda p: p / "nowhere", "no such checkpoint or folder"),
    (lambda p: p, "holds no checkpoint"),
])
@pytest.mark.slow
def test_eval_rejects_missing_checkpoints(tmp_path, make, fragment):
    assert_one_line_error(run_script("eval.py", "--checkpoint", str(make(tmp_path))), fragment)


def _logged_results(run):
    results_file = os.path.join(ROOT, "logs", run, "results.json")
    if not os.path.exists(results_file):
        pytest.skip(f"reference run {run} is not committed")
    return json.loads(open(results_file).read())


def _assert_reproduces(numbers, logged):
    assert numbers["checkpoint"] == logged["checkpoint"]
    for key, value in logged.items():
        if key.startswith(("validation_", "test_")):
            assert numbers[key] == pytest.approx(value, abs=1e-4), key


@pytest.mark.parametrize("run", ["part1", "part2", "part2-bidir"])
@pytest.mark.slow
def test_eval_reproduces_each_committed_reference_run(run):
    logged = _logged_results(run)
    evaluated = run_script("eval.py", "--checkpoint", os.path.join("checkpoints", run), "--json",
                           cwd=ROOT)
    assert evaluated.returncode == 0 and evaluated.stderr == "", evaluated.stderr
    _assert_reproduces(json.loads(evaluated.stdout), logged)


@pytest.mark.parametrize("run", ["part1", "part2-bidir"])
@pytest.mark.slow
def test_the_textbook_lstm_reproduces_the_committed_runs_of_the_fast_one(run, monkeypatch):
    from lstm_mnist.evaluate import evaluate_checkpoint
    logged = _logged_results(run)
    monkeypatch.chdir(ROOT)  # the checkpoint paths results.json names are relative to the checkout
    _assert_reproduces(evaluate_checkpoint(os.path.join("checkpoints", run), lstm="textbook"),
                       logged)
