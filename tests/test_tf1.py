"""Importing TensorFlow (lstm_mnist.tf1): only where graphs are built, quietly unless asked,
and a broken or missing TensorFlow explained in one line."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT, assert_one_line_error, run_script, user_environment

# Modules that neither build nor run graphs, and so must not import TensorFlow.
TENSORFLOW_FREE = ("lstm_mnist", "lstm_mnist.cli", "lstm_mnist.config", "lstm_mnist.data",
                   "lstm_mnist.errors", "lstm_mnist.figures", "lstm_mnist.files",
                   "lstm_mnist.images", "lstm_mnist.plots", "lstm_mnist.runs",
                   "lstm_mnist.sequences")


def _run_python(code, **environment):
    """Runs `python -c code` in the repository as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env=user_environment(**environment))


def test_the_package_and_modules_without_graphs_do_not_import_tensorflow():
    result = _run_python(f"import sys; import {', '.join(TENSORFLOW_FREE)}; "
                         "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]" and result.stderr == ""


@pytest.mark.slow
def test_tensorflow_is_quiet_unless_asked():
    quiet = _run_python("from lstm_mnist.tf1 import tf; tf.Session().close()")
    assert quiet.returncode == 0 and quiet.stderr == ""
    # The deprecation notice that disable_v2_behavior() logs comes back with LSTM_MNIST_VERBOSE.
    loud = _run_python("from lstm_mnist.tf1 import tf", LSTM_MNIST_VERBOSE="1")
    assert loud.returncode == 0 and "disable_resource_variables" in loud.stderr


@pytest.mark.slow
@pytest.mark.parametrize("setting, uses_bfc", [(None, True), ("false", False)])
def test_sessions_allocate_from_the_bfc_allocator_unless_the_user_says_otherwise(setting,
                                                                                 uses_bfc):
    # The BFC allocator hands out blocks of 256 bytes or more, and get_memory_info reports them;
    # for a tensor of three floats TensorFlow's default CPU allocator reports nothing.
    code = ("from lstm_mnist.tf1 import tf\n"
            "x = tf.placeholder(tf.float32, [None])\n"
            "with tf.Session() as session: session.run(x * 2.0, {x: [1.0, 2.0, 3.0]})\n"
            "print(tf.config.experimental.get_memory_info('CPU:0')['peak'])")
    environment = {} if setting is None else {"TF_CPU_ALLOCATOR_USE_BFC": setting}
    result = _run_python(code, **environment)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (int(result.stdout) >= 256) == uses_bfc


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


@pytest.mark.slow
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
    assert_one_line_error(result, "eval.py: error: TensorFlow is not installed for ",
                           'pip install -e ".[cpu]"')
    assert result.returncode == 2
