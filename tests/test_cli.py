"""The command-line scripts: quiet and instant, one-line errors for bad input, and eval.py
reproducing a run."""

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_script, user_environment, write_mnist
from lstm_mnist import cli
from lstm_mnist.config import Config

SCRIPTS = ("train.py", "eval.py", "predict.py", "plot.py")
# Modules that neither build nor run graphs, and so must not import TensorFlow.
TENSORFLOW_FREE = ("lstm_mnist", "lstm_mnist.cli", "lstm_mnist.config", "lstm_mnist.data",
                   "lstm_mnist.errors", "lstm_mnist.figures", "lstm_mnist.files",
                   "lstm_mnist.images", "lstm_mnist.plots", "lstm_mnist.runs",
                   "lstm_mnist.sequences")


def _assert_one_line_error(result, *fragments):
    """The script failed and its whole stderr is one line holding every fragment."""
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _run_python(code, **environment):
    """Runs `python -c code` in the repository as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env=user_environment(**environment))


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_is_instant_and_prints_only_the_scripts_own_text(script):
    start = time.monotonic()
    result = run_script(script, "--help")
    elapsed = time.monotonic() - start
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"usage: {script} ")
    assert "--verbose" in result.stdout
    assert elapsed < 1.0, f"{script} --help took {elapsed:.2f} s"


@pytest.mark.parametrize("script,needed", [
    ("train.py", []), ("eval.py", ["--checkpoint", "checkpoints/part1"]),
    ("predict.py", ["--checkpoint", "checkpoints/part1", "digit.png"]), ("plot.py", ["logs/part1"])])
def test_a_bad_flag_is_instant_and_one_line(script, needed):
    start = time.monotonic()
    result = run_script(script, *needed, "--bogus", cwd=ROOT)
    elapsed = time.monotonic() - start
    _assert_one_line_error(result, f"{script}: error: ", "--bogus", "(see --help)")
    assert result.returncode == 2 and result.stdout == ""
    assert elapsed < 1.0, f"{script} --bogus took {elapsed:.2f} s"


def test_the_package_and_modules_without_graphs_do_not_import_tensorflow():
    result = _run_python(f"import sys; import {', '.join(TENSORFLOW_FREE)}; "
                         "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]" and result.stderr == ""


def test_tensorflow_is_quiet_unless_asked():
    quiet = _run_python("from lstm_mnist.tf1 import tf; tf.Session().close()")
    assert quiet.returncode == 0 and quiet.stderr == ""
    # The deprecation notice that disable_v2_behavior() logs comes back with LSTM_MNIST_VERBOSE.
    loud = _run_python("from lstm_mnist.tf1 import tf", LSTM_MNIST_VERBOSE="1")
    assert loud.returncode == 0 and "disable_resource_variables" in loud.stderr


def test_a_failing_tensorflow_import_shows_what_tensorflow_printed(tmp_path):
    fake = tmp_path / "tensorflow"  # shadows the real one: logs from C, as TF does, then breaks
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\nos.write(2, b'E0000 libtensorflow.so: symbol lookup error\\n')\n"
        "raise RuntimeError('broken build')\n")
    result = _run_python("import lstm_mnist.tf1", PYTHONPATH=str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("E0000 libtensorflow.so: symbol lookup error\nTraceback")
    assert result.stderr.endswith("RuntimeError: broken build\n")


def test_the_verbose_flag_lets_tensorflow_talk(tmp_path):
    result = run_script("eval.py", "--checkpoint", str(tmp_path / "nowhere"), "--verbose")
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) > 1 and "disable_resource_variables" in result.stderr
    assert lines[-1] == f"eval.py: error: {tmp_path / 'nowhere'}: no such checkpoint or folder"


def test_both_tensorflow_wheels_in_one_environment_get_a_one_line_warning(monkeypatch, capsys):
    from lstm_mnist import tf1
    tf1._warn_about_rival_wheels()  # this environment has one of them
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(tf1.metadata, "version", lambda name: "2.21.0")
    tf1._warn_about_rival_wheels()
    assert capsys.readouterr().err == (
        "lstm_mnist: warning: tensorflow 2.21.0 and tensorflow-cpu 2.21.0 are both installed and "
        "overwrite each other's files: make a fresh environment with one "
        '(pip install -e ".[cpu]" or pip install -e ".[gpu]")\n')


def test_a_missing_tensorflow_is_one_line_naming_the_install_command():
    script = os.path.join(ROOT, "scripts", "eval.py")
    # An import hook that finds no TensorFlow, as in an environment where it is not installed.
    result = _run_python(
        "import runpy, sys\n"
        "class NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n"
        f"sys.argv = [{script!r}, '--checkpoint', 'checkpoints/part1']\n"
        f"runpy.run_path({script!r}, run_name='__main__')\n")
    _assert_one_line_error(result, "eval.py: error: TensorFlow is not installed for ",
                           'pip install -e ".[cpu]"')
    assert result.returncode == 2


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
])
def test_flags_make_the_config_they_name(argv, changes):
    args = _config_parser().parse_args(argv)
    assert cli.config_changes(args) == changes
    assert cli.config_from_args(args) == Config(**changes)


@pytest.mark.parametrize("args,fragment", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--layers", "0"], "layers must be an integer >= 1"),
    (["--layers", "2", "--hidden", "64,32,16"], "hidden gives 3 sizes for 2 layers"),
    (["--hidden", "0"], "expected comma-separated positive integers"),
    (["--hidden", "abc"], "expected comma-separated positive integers"),
    (["--hidden=-8"], "expected comma-separated positive integers"),
    (["--layers", "2", "--hidden", "64,0"], "expected comma-separated positive integers"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--lr", "-1"], "learning rate must be > 0"),
    (["--dropout", "1"], "dropout is a drop probability in [0, 1)"),
    (["--dropout", "-0.1"], "dropout is a drop probability in [0, 1)"),
    (["--crop-min", "20", "--crop-max", "30"], "crop bounds must satisfy"),
    (["--crop-min", "0"], "crop bounds must satisfy"),
    (["--crop-min", "27", "--crop-max", "25"], "crop bounds must satisfy"),
    (["--epochs", "x"], "argument --epochs: invalid int value"),
    (["--resume", "nowhere"], "nowhere: no such run checkpoint folder"),
])
def test_train_rejects_bad_flags_with_one_line(tmp_path, args, fragment):
    result = run_script("train.py", *args, "--logdir", str(tmp_path / "logs"), cwd=tmp_path)
    _assert_one_line_error(result, fragment)
    assert not (tmp_path / "logs").exists()


def test_train_rejects_corrupt_data_and_writes_nothing(tmp_path):
    write_mnist(tmp_path / "data")
    result = run_script("train.py", "--data-dir", str(tmp_path / "data"), "--logdir",
                        str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck"))
    _assert_one_line_error(result, "checksum mismatch")
    assert not (tmp_path / "logs").exists() and not (tmp_path / "ck").exists()


def test_tiny_run_then_eval_reproduces_the_logged_validation_error(tmp_path):
    common = ["--logdir", str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck")]
    result = run_script("train.py", "--hidden", "8", "--head-hidden", "16", "--epochs", "2",
                        "--train-subset", "300", "--run-name", "tiny", *common)
    assert result.returncode == 0, result.stderr
    logs = tmp_path / "logs" / "tiny"
    for name in ("metrics.csv", "train.log", "config.json", "results.json"):
        assert (logs / name).stat().st_size > 0
    assert os.listdir(logs / "train") and os.listdir(logs / "validation")
    logged = json.loads((logs / "results.json").read_text())

    evaluated = run_script("eval.py", "--checkpoint", str(tmp_path / "ck" / "tiny"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    numbers = json.loads(evaluated.stdout)
    assert numbers["checkpoint"] == logged["checkpoint"]
    for key in ("validation_error", "test_error", "validation_accuracy", "test_accuracy"):
        assert numbers[key] == pytest.approx(logged[key], abs=1e-9), key

    # A config that no longer matches the checkpoint's variables is refused in one line.
    config_path = tmp_path / "ck" / "tiny" / "config.json"
    document = json.loads(config_path.read_text())
    document["config"]["hidden"] = [9]
    config_path.write_text(json.dumps(document))
    mismatch = run_script("eval.py", "--checkpoint", str(tmp_path / "ck" / "tiny"))
    _assert_one_line_error(mismatch, "does not match its config", "lstm/layer_0/fw/w_x")

    # The same run name again is refused, and the first run is left as it was.
    again = run_script("train.py", "--epochs", "1", "--run-name", "tiny", *common)
    _assert_one_line_error(again, "already exists")
    assert json.loads((logs / "results.json").read_text()) == logged


@pytest.mark.parametrize("flag", ["--logdir", "--checkpoint-dir"])
def test_train_rejects_an_unwritable_folder(tmp_path, flag):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_script("train.py", "--epochs", "1", flag, str(blocker / "runs"), cwd=tmp_path)
    _assert_one_line_error(result, "cannot create folder")
    assert blocker.read_text() == "not a folder"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("make,fragment", [
    (lambda p: p / "nowhere", "no such checkpoint or folder"),
    (lambda p: p, "holds no checkpoint"),
])
def test_eval_rejects_missing_checkpoints(tmp_path, make, fragment):
    _assert_one_line_error(run_script("eval.py", "--checkpoint", str(make(tmp_path))), fragment)


@pytest.mark.parametrize("run", ["part1", "part2", "part2-bidir"])
def test_eval_reproduces_each_committed_reference_run(run):
    results_file = os.path.join(ROOT, "logs", run, "results.json")
    if not os.path.exists(results_file):
        pytest.skip(f"reference run {run} is not committed")
    logged = json.loads(open(results_file).read())
    evaluated = run_script("eval.py", "--checkpoint", os.path.join("checkpoints", run), "--json",
                           cwd=ROOT)
    assert evaluated.returncode == 0 and evaluated.stderr == "", evaluated.stderr
    numbers = json.loads(evaluated.stdout)
    assert numbers["checkpoint"] == logged["checkpoint"]
    for key, value in logged.items():
        if key.startswith(("validation_", "test_")):
            assert numbers[key] == pytest.approx(value, abs=1e-4), key
