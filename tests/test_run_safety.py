"""Runs are safe units: a copy, a second process, a bad flag, a full disk or a diverging model never
destroys or corrupts a run, and each ends in one line (issue 10)."""

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT, TINY_FLAGS, grey_image, run_script, start_script
from lstm_mnist import figures as figures_module
from lstm_mnist import trainer as trainer_module
from lstm_mnist.checkpoints import CheckpointError
from lstm_mnist.config import ConfigError, load_config, tiny_config
from lstm_mnist.errors import UserError
from lstm_mnist.evaluate import evaluate_checkpoint
from lstm_mnist.tf1 import tf
from lstm_mnist.trainer import (RunFinished, TrainingDiverged, TrainingInterrupted, resume,
                                train)


def _folders(tmp_path, name="r"):
    return tmp_path / "logs" / name, tmp_path / "ck" / name


def _train(tmp_path, name="r", **changes):
    return train(tiny_config(**changes), run_name=name, logdir=str(tmp_path / "logs"),
                 checkpoint_dir=str(tmp_path / "ck"), echo=False)


def _signal_at_measure(monkeypatch, call: int, number=signal.SIGTERM):
    """Sends this process signal `number` when the trainer measures a split for the `call`-th
    time (1: epoch 1's validation; with one epoch, 2 and 3: the final test)."""
    calls = []
    measure = trainer_module.measure

    def measure_and_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), number)
        return measure(*args, **kwargs)
    monkeypatch.setattr(trainer_module, "measure", measure_and_signal)


def _interrupted_run(tmp_path, monkeypatch, name="r"):
    """A 2-epoch run stopped by SIGTERM after epoch 1; returns the interruption message."""
    _signal_at_measure(monkeypatch, 1)
    with pytest.raises(TrainingInterrupted) as stopped:
        _train(tmp_path, name, epochs=2)
    monkeypatch.undo()
    return str(stopped.value)


def _snapshot(*folders):
    """{path: bytes} of every file below `folders`."""
    files = {}
    for folder in folders:
        for parent, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(parent, name)
                files[path] = open(path, "rb").read()
    return files


def _one_line(result, script="train.py"):
    """The script's one error line; fails on a traceback, more lines or a zero exit status."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(script + ":")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextlib.contextmanager
def _mounted(target, *options):
    """Mounts a tmpfs (or a read-only bind of `target` onto itself) for the test's duration;
    skips where this process may not mount (not root)."""
    os.makedirs(target, exist_ok=True)
    commands = ([["mount", "--bind", str(target), str(target)],
                 ["mount", "-o", "remount,bind,ro", str(target)]] if options == ("ro",)
                else [["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(target)]])
    for number, command in enumerate(commands):
        if subprocess.run(command, capture_output=True).returncode != 0:
            if number:
                subprocess.run(["umount", str(target)])
            pytest.skip("needs permission to mount file systems (root)")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


# 1. Copies and moves.

def test_a_copied_run_resumes_from_its_own_files_and_never_touches_the_original(
        tmp_path, monkeypatch):
    _interrupted_run(tmp_path, monkeypatch)
    logs, ck = _folders(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "logs", copy / "logs")
    shutil.copytree(tmp_path / "ck", copy / "ck")
    # State files as older versions wrote them: absolute paths into the original folders.
    for kind in ("latest", "best"):
        state = copy / "ck" / "r" / kind / "checkpoint"
        state.write_text(state.read_text().replace('"model', f'"{ck / kind}/model'))
    original = _snapshot(logs, ck)

    results = resume(str(copy / "ck" / "r"), logdir=str(copy / "logs"), echo=False)

    assert _snapshot(logs, ck) == original
    assert results["checkpoint"].startswith(str(copy / "ck" / "r" / "best"))
    assert "resumed from " + str(copy / "ck" / "r" / "latest") in (
        copy / "logs" / "r" / "train.log").read_text()
    # Moved elsewhere, the copy evaluates from its own files.
    moved = tmp_path / "moved"
    shutil.move(str(copy / "ck" / "r"), str(moved))
    shutil.rmtree(copy / "logs")
    assert evaluate_checkpoint(str(moved))["checkpoint"].startswith(str(moved / "best"))
    assert "/tmp/" not in (moved / "latest" / "checkpoint").read_text()  # names, not paths


# 2. The printed command and the log folder's identity.

@pytest.mark.slow
def test_the_printed_resume_command_continues_the_run_from_any_folder(tmp_path, monkeypatch):
    message = _interrupted_run(tmp_path, monkeypatch)
    command = message.split("continue with: ")[1].split()
    assert command[0] == "python" and "--logdir" in command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, *command[1:], "--quiet"], cwd=elsewhere,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert not (elsewhere / "logs").exists()
    rows = (tmp_path / "logs" / "r" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]


@pytest.mark.slow
def test_resume_refuses_the_logs_of_another_run_of_the_same_name(tmp_path, monkeypatch):
    _interrupted_run(tmp_path / "a", monkeypatch)
    _train(tmp_path / "b")  # an unrelated, finished run also named r
    other = _snapshot(*_folders(tmp_path / "b"))
    with pytest.raises(UserError, match="belongs to another run"):
        resume(str(tmp_path / "a" / "ck" / "r"), logdir=str(tmp_path / "b" / "logs"),
               echo=False)
    assert _snapshot(*_folders(tmp_path / "b")) == other


# 3. --overwrite.

def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    documents = tmp_path / "logs" / "Documents"
    documents.mkdir(parents=True)
    (documents / "thesis.txt").write_text("years of work")
    with pytest.raises(UserError, match="not a run of this project"):
        train(tiny_config(), run_name="Documents", logdir=str(tmp_path / "logs"),
              checkpoint_dir=str(tmp_path / "ck"), overwrite=True, echo=False)
    assert (documents / "thesis.txt").read_text() == "years of work"
    assert not (tmp_path / "ck").exists()


@pytest.mark.slow
def test_overwrite_refuses_a_symlinked_run_folder(tmp_path):
    _train(tmp_path, "real")
    os.symlink(tmp_path / "logs" / "real", tmp_path / "logs" / "link")
    before = _snapshot(*_folders(tmp_path, "real"))
    with pytest.raises(UserError, match="symbolic link"):
        _train_overwrite(tmp_path, "link")
    assert _snapshot(*_folders(tmp_path, "real")) == before


def _train_overwrite(tmp_path, name, **changes):
    return train(tiny_config(**changes), run_name=name, logdir=str(tmp_path / "logs"),
                 checkpoint_dir=str(tmp_path / "ck"), overwrite=True, echo=False)


@pytest.mark.slow
def test_overwrite_deletes_the_old_run_only_after_every_check_passed(tmp_path):
    _train(tmp_path)
    before = _snapshot(*_folders(tmp_path))
    for flags in (["--seed", "-1"], ["--crop-seed", "-5"], ["--hidden", "100000"],
                  ["--train-subset", "100000"]):
        result = run_script("train.py", *TINY_FLAGS, *flags, "--run-name", "r", "--overwrite",
                            "--logdir", str(tmp_path / "logs"), "--checkpoint-dir",
                            str(tmp_path / "ck"))
        assert _one_line(result).startswith("train.py: error: "), flags
        assert _snapshot(*_folders(tmp_path)) == before, flags
    old_id = json.loads(before[str(_folders(tmp_path)[1] / "config.json")])["run_id"]
    _train_overwrite(tmp_path, "r", epochs=2)
    assert json.loads((_folders(tmp_path)[1] / "config.json").read_text())["run_id"] != old_id


# 4. One process per run.

@pytest.mark.slow
def test_a_second_process_cannot_train_or_replace_a_run_in_use(tmp_path):
    flags = [*TINY_FLAGS, "--epochs", "500", "--run-name", "r", "--logdir", str(tmp_path / "logs"),
             "--checkpoint-dir", str(tmp_path / "ck")]
    first = start_script("train.py", *flags)
    try:
        latest = tmp_path / "ck" / "r" / "latest" / "checkpoint"
        deadline = time.time() + 300
        while not latest.exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.1)
        for flags in (["--resume", str(tmp_path / "ck" / "r"), "--logdir",
                       str(tmp_path / "logs")], flags + ["--overwrite"]):
            second = run_script("train.py", *flags)
            assert "in use by another training process" in _one_line(second), flags
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()
    # kill -9 releases the lock: the run continues.
    resumed = start_script("train.py", "--resume", str(tmp_path / "ck" / "r"), "--logdir",
                           str(tmp_path / "logs"))
    log = tmp_path / "logs" / "r" / "train.log"
    while "resumed from" not in log.read_text():
        assert resumed.poll() is None, resumed.communicate()
        time.sleep(0.1)
    resumed.kill()
    resumed.wait()


# 5. Divergence.

@pytest.mark.parametrize("clip", [5.0, 0.0])
@pytest.mark.slow
def test_non_finite_weights_are_never_saved(tmp_path, clip):
    _train(tmp_path, epochs=1, clip=clip)
    logs, ck = _folders(tmp_path)
    good = tf.train.latest_checkpoint(str(ck / "latest"))
    document = json.loads((ck / "config.json").read_text())
    document["config"].update(epochs=3, lr=1e30, lr_schedule="constant")
    (ck / "config.json").write_text(json.dumps(document))
    with pytest.raises(TrainingDiverged, match="became (nan|inf|NaN)"):
        resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)
    assert tf.train.latest_checkpoint(str(ck / "latest")) == good
    for prefix in (good, tf.train.latest_checkpoint(str(ck / "best"))):
        reader = tf.train.load_checkpoint(prefix)
        assert all(np.all(np.isfinite(reader.get_tensor(name)))
                   for name, _ in tf.train.list_variables(prefix))
    assert "The last good checkpoint stays the latest" in (logs / "train.log").read_text()


# 6. One line, never a traceback.

@pytest.mark.slow
def test_a_damaged_checkpoint_is_one_line_for_resume(tmp_path, monkeypatch):
    _interrupted_run(tmp_path, monkeypatch)
    ck = _folders(tmp_path)[1]
    prefix = tf.train.latest_checkpoint(str(ck / "latest"))
    data = open(prefix + ".data-00000-of-00001", "rb").read()
    damages = {".index": b"", ".data-00000-of-00001": data[: len(data) // 2]}
    for suffix, damaged in damages.items():
        intact = open(prefix + suffix, "rb").read()
        open(prefix + suffix, "wb").write(damaged)
        result = run_script("train.py", "--resume", str(ck), "--logdir", str(tmp_path / "logs"))
        assert "damaged or truncated" in _one_line(result), suffix
        open(prefix + suffix, "wb").write(intact)
    (ck / "latest" / "checkpoint").write_text("")
    result = run_script("train.py", "--resume", str(ck), "--logdir", str(tmp_path / "logs"))
    assert "empty checkpoint state file" in _one_line(result)
    result = run_script("eval.py", "--checkpoint", str(ck / "latest"))
    assert "empty checkpoint state file" in _one_line(result, "eval.py")


def test_resume_with_a_config_that_does_not_match_the_weights_is_one_line(tmp_path, monkeypatch):
    _interrupted_run(tmp_path, monkeypatch)
    ck = _folders(tmp_path)[1]
    document = json.loads((ck / "config.json").read_text())
    document["config"]["hidden"] = [16]
    (ck / "config.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="does not match its config"):
        resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    with _mounted(tmp_path / "disk", "size=2m") as disk:
        # Without TensorBoard's pictures, 50 epochs of the run fit in what is left once the filler
        # is removed.
        process = start_script("train.py", *TINY_FLAGS, "--epochs", "50", "--run-name", "r",
                               "--logdir", str(disk / "logs"), "--checkpoint-dir", str(disk / "ck"),
                               "--no-pictures")
        while not (disk / "ck" / "r" / "latest" / "checkpoint").exists():
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        with open(disk / "filler", "wb", buffering=0) as filler:  # the disk fills under the run
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        stdout, stderr = process.communicate(timeout=300)
        line = _one_line(subprocess.CompletedProcess(process.args, process.returncode, stdout,
                                                     stderr))
        assert "no space left on device" in line.lower() and "the last good checkpoint is" in line
        latest = tf.train.latest_checkpoint(str(disk / "ck" / "r" / "latest"))
        tf.train.load_checkpoint(latest)  # intact
        rows = (disk / "logs" / "r" / "metrics.csv").read_text().splitlines()
        assert len(rows) >= 2 and all(len(row.split(",")) == len(rows[0].split(","))
                                      for row in rows)
        os.remove(disk / "filler")
        resumed = run_script("train.py", "--resume", str(disk / "ck" / "r"), "--logdir",
                             str(disk / "logs"), "--epochs", "50", "--quiet", "--no-pictures")
        assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_a_read_only_checkpoint_folder_is_refused_before_training(tmp_path, monkeypatch):
    _interrupted_run(tmp_path, monkeypatch)
    logs, ck = _folders(tmp_path)
    before = _snapshot(logs)
    with _mounted(ck, "ro"):
        result = run_script("train.py", "--resume", str(ck), "--logdir", str(tmp_path / "logs"))
        assert "cannot write there" in _one_line(result)
    assert _snapshot(logs) == before


@pytest.mark.slow
def test_eval_report_into_a_place_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_script("eval.py", "--checkpoint", os.path.join(ROOT, "checkpoints", "part1"),
                        "--report", str(tmp_path / "file" / "report"))
    assert "not a folder" in _one_line(result, "eval.py")
    with _mounted(tmp_path / "ro", "ro"):
        result = run_script("eval.py", "--checkpoint", os.path.join(ROOT, "checkpoints",
                                                                    "part1"),
                            "--report", str(tmp_path / "ro" / "report"))
        assert "cannot write there" in _one_line(result, "eval.py")


# 7. A run that could not start leaves its name free.

@pytest.mark.slow
def test_a_refused_run_creates_no_folder(tmp_path):
    (tmp_path / "logs").write_text("a file where the log folder should be")
    result = run_script("train.py", *TINY_FLAGS, "--run-name", "r", "--logdir",
                        str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck"))
    assert "not a folder" in _one_line(result)
    assert not (tmp_path / "ck").exists()


@pytest.mark.slow
def test_a_run_that_diverges_before_its_first_checkpoint_leaves_its_name_free(tmp_path):
    with pytest.raises(TrainingDiverged, match="No checkpoint had been saved yet"):
        _train(tmp_path, lr=1e30, lr_schedule="constant", clip=0.0)
    assert not any(folder.exists() for folder in _folders(tmp_path))
    _train(tmp_path)  # the name is free again


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_can_be_resumed_from_the_start(tmp_path):
    _train(tmp_path, "donor")
    logs, ck = _folders(tmp_path)
    for folder in (logs, ck):  # what kill -9 during the first epoch leaves
        folder.mkdir(parents=True)
        shutil.copy(_folders(tmp_path, "donor")[0] / "config.json", folder / "config.json")
    with pytest.raises(UserError, match="already exists .* --resume"):
        _train(tmp_path)
    results = resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)
    assert results["best_epoch"] == 1


@pytest.mark.slow
def test_ctrl_c_while_the_graph_is_built_creates_nothing(tmp_path):
    process = start_script("train.py", *TINY_FLAGS, "--run-name", "r", "--logdir",
                           str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck"))
    time.sleep(1.0)  # TensorFlow is still loading
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert not (tmp_path / "logs").exists() and not (tmp_path / "ck").exists()


# 8. Permissions.

def test_files_the_project_writes_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        _train(tmp_path)
    finally:
        os.umask(previous)
    logs, ck = _folders(tmp_path)
    for path in (logs / "config.json", logs / "metrics.csv", logs / "results.json",
                 ck / "config.json"):
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o644), path


# 9. Honest messages.

def test_an_unknown_config_key_names_its_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": {"momentum": 0.9}}))
    with pytest.raises(ConfigError, match=f"{path}: unknown config keys: momentum"):
        load_config(str(path))


@pytest.mark.slow
def test_resuming_a_finished_run_changes_nothing(tmp_path):
    _train(tmp_path)
    before = _snapshot(*_folders(tmp_path))
    with pytest.raises(RunFinished, match="trained all 1 epochs"):
        resume(str(_folders(tmp_path)[1]), logdir=str(tmp_path / "logs"), echo=False)
    assert _snapshot(*_folders(tmp_path)) == before
    result = run_script("train.py", "--resume", str(_folders(tmp_path)[1]), "--logdir",
                        str(tmp_path / "logs"))
    assert result.returncode == 0 and "nothing to do" in result.stderr


@pytest.mark.slow
def test_sigterm_during_the_final_test_stops_it_and_resume_redoes_only_the_test(
        tmp_path, monkeypatch):
    _signal_at_measure(monkeypatch, 3)  # epoch 1's validation, then the final test's two
    with pytest.raises(TrainingInterrupted, match="during the final test"):
        _train(tmp_path)
    monkeypatch.undo()
    logs, ck = _folders(tmp_path)
    assert not (logs / "results.json").exists()
    metrics = (logs / "metrics.csv").read_text()
    results = resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)
    assert results["best_epoch"] == 1 and (logs / "results.json").exists()
    assert (logs / "metrics.csv").read_text() == metrics


# 9. Runs started together (issue 25).

@pytest.mark.slow
def test_two_trainings_of_one_name_started_together_never_both_proceed(tmp_path):
    folders = ["--logdir", str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck")]
    named = [start_script("train.py", *TINY_FLAGS, "--epochs", "1", "--run-name", "r", *folders)
             for _ in range(2)]
    unnamed = [start_script("train.py", *TINY_FLAGS, "--epochs", "1", *folders) for _ in range(2)]
    results = [subprocess.CompletedProcess(p.args, p.wait(timeout=600), *p.communicate())
               for p in named + unnamed]
    assert sorted(result.returncode for result in results[:2]) == [0, 2], results
    loser = next(result for result in results[:2] if result.returncode)
    assert "already exists" in _one_line(loser)
    assert json.loads((tmp_path / "logs" / "r" / "results.json").read_text())["run"] == "r"
    assert [result.returncode for result in results[2:]] == [0, 0], results[2:]
    runs = sorted(os.listdir(tmp_path / "logs"))
    assert len(runs) == 3 and runs == sorted(os.listdir(tmp_path / "ck"))
    for run in runs:
        assert (tmp_path / "logs" / run / "results.json").exists(), run


# 10. A run's files stay consistent at every kill point (issue 25).

@pytest.mark.slow
def test_a_best_checkpoint_lost_between_the_latest_and_best_saves_is_caught_up_on_resume(
        tmp_path, monkeypatch):
    # A learning rate too small to change the validation error: epoch 1 stays the best.
    _signal_at_measure(monkeypatch, 1)
    with pytest.raises(TrainingInterrupted):
        _train(tmp_path, epochs=2, lr=1e-12, lr_schedule="constant")
    monkeypatch.undo()
    logs, ck = _folders(tmp_path)
    shutil.rmtree(ck / "best")  # killed after epoch 1's latest save, before its best save
    results = resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)
    assert results["best_epoch"] == 1
    assert results["checkpoint"] == str(ck / "best" / "model-1")


@pytest.mark.slow
def test_resume_finishes_a_run_whose_end_was_cut_short(tmp_path):
    _train(tmp_path)
    logs, ck = _folders(tmp_path)
    results = json.loads((logs / "results.json").read_text())
    (logs / "curves.png").unlink()  # killed at the picture's rename
    log_lines = (logs / "train.log").read_text().splitlines(keepends=True)
    (logs / "train.log").write_text("".join(log_lines[:-1]))  # before the "done" line
    assert resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)["test_error"] == \
        results["test_error"]
    assert (logs / "curves.png").exists()
    assert " done in " in (logs / "train.log").read_text().splitlines()[-1]
    with pytest.raises(RunFinished):
        resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)


@pytest.mark.slow
def test_resume_removes_the_temporaries_of_crashed_writes(tmp_path, monkeypatch):
    _interrupted_run(tmp_path, monkeypatch)
    logs, ck = _folders(tmp_path)
    crashed = [logs / ".metrics.csv.k2x_9abq", logs / ".curves.png.aaaa1111",
               ck / "latest" / "model-3.index.tempstate123", ck / "best" / "checkpoint.tmp0a1b"]
    for path in crashed:
        path.write_text("half")
    (logs / "NOTES.txt").write_text("mine")
    resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)
    assert [path for path in crashed if path.exists()] == []
    assert (logs / "NOTES.txt").read_text() == "mine"


@pytest.mark.parametrize("damage", [b"\x89PNG\x00\xff\xfe", b"epoch,elapsed_s\n1,2.0\n",
                                    b"epoch,elapsed_s,validation_error\n1,2.0,x\n",
                                    b"epoch,elapsed_s,validation_error\n1,2.0,0.5\x00\n",
                                    b"epoch,elapsed_s,validation_error\n1,2.0\n",
                                    b"epoch,elapsed_s,validation_error\n2,2.0,0.5\n"])
@pytest.mark.slow
def test_a_damaged_metrics_file_stops_resume_in_one_line_before_anything_is_written(
        tmp_path, monkeypatch, damage):
    _interrupted_run(tmp_path, monkeypatch)
    logs, ck = _folders(tmp_path)
    (logs / "metrics.csv").write_bytes(damage)
    before = _snapshot(logs, ck)
    with pytest.raises(UserError, match=f"{logs / 'metrics.csv'}: damaged metrics file"):
        resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)
    assert _snapshot(logs, ck) == before


# 11. Every failure one line, every stop said (issue 25).

@pytest.mark.slow
def test_an_eval_report_is_written_whole_or_not_at_all(tiny_checkpoint, tmp_path):
    report = tmp_path / "report"
    (report / "confusion_matrix.csv").mkdir(parents=True)
    result = run_script("eval.py", "--checkpoint", tiny_checkpoint, "--report", str(report))
    assert str(report / "confusion_matrix.csv") in _one_line(result, "eval.py")
    assert os.listdir(tmp_path) == ["report"] and os.listdir(report) == ["confusion_matrix.csv"]


@pytest.mark.slow
def test_a_signal_stops_eval_with_a_line_saying_why_and_leaves_no_report(
        tiny_checkpoint, tmp_path):
    for number in (signal.SIGTERM, signal.SIGHUP):
        process = start_script("eval.py", "--checkpoint", tiny_checkpoint, "--report",
                               str(tmp_path / "report"))
        time.sleep(2)  # past the handlers' installation, inside TensorFlow's import or the eval
        process.send_signal(number)
        stdout, stderr = process.communicate(timeout=120)
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        line = _one_line(result, "eval.py")
        assert line.startswith(f"eval.py: stopped: by {signal.Signals(number).name}"), line
        assert process.returncode == 128 + number
        assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_sighup_stops_training_at_a_safe_point_like_sigterm(tmp_path, monkeypatch):
    _signal_at_measure(monkeypatch, 1, signal.SIGHUP)
    with pytest.raises(TrainingInterrupted, match="SIGHUP at step .* continue with: "):
        _train(tmp_path, epochs=2)
    monkeypatch.undo()
    results = resume(str(_folders(tmp_path)[1]), logdir=str(tmp_path / "logs"), echo=False)
    assert results["best_epoch"] in (1, 2)


@pytest.mark.parametrize("state", ["folder", "fifo"])
def test_a_checkpoint_state_file_that_is_not_a_file_is_one_line(tmp_path, state):
    from lstm_mnist.checkpoints import saved_in
    folder = tmp_path / "best"
    folder.mkdir()
    if state == "folder":
        (folder / "checkpoint").mkdir()
    else:
        os.mkfifo(folder / "checkpoint")
    with pytest.raises(CheckpointError, match="not a regular file"):
        saved_in(str(folder))


@pytest.mark.slow
def test_a_checkpoint_folder_deleted_during_training_is_one_line(tmp_path, monkeypatch):
    measure = trainer_module.measure

    def measure_after_deleting(*args, **kwargs):
        shutil.rmtree(tmp_path / "ck" / "r")
        return measure(*args, **kwargs)
    monkeypatch.setattr(trainer_module, "measure", measure_after_deleting)
    with pytest.raises(UserError, match="moved or deleted while the run trained|No such file"):
        _train(tmp_path)


@pytest.mark.slow
def test_a_hard_linked_copy_resumes_without_touching_the_original(tmp_path, monkeypatch):
    _interrupted_run(tmp_path, monkeypatch)
    copy = tmp_path / "copy"
    copy.mkdir()
    for kind in ("logs", "ck"):
        subprocess.run(["cp", "-al", str(tmp_path / kind), str(copy / kind)], check=True)
    original = _snapshot(*_folders(tmp_path))
    resume(str(copy / "ck" / "r"), logdir=str(copy / "logs"), echo=False)
    assert _snapshot(*_folders(tmp_path)) == original


@pytest.mark.parametrize("lost", ["metrics.csv", "best"])
@pytest.mark.slow
def test_resume_of_a_run_that_lost_its_metrics_or_best_before_the_final_test_is_one_line(
        tmp_path, monkeypatch, lost):
    _signal_at_measure(monkeypatch, 3)  # epoch 1 of 1 trained, stopped during the final test
    with pytest.raises(TrainingInterrupted):
        _train(tmp_path, lr=1e-12, lr_schedule="constant")
    monkeypatch.undo()
    logs, ck = _folders(tmp_path)
    if lost == "best":  # epoch 1 ends at the latest checkpoint: resume saves it as best again
        shutil.rmtree(ck / "best")
        assert resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)["best_epoch"] == 1
        return
    (logs / "metrics.csv").unlink()
    with pytest.raises(UserError, match="metrics.csv: records no epoch"):
        resume(str(ck), logdir=str(tmp_path / "logs"), echo=False)


@pytest.mark.slow
def test_eval_refuses_a_model_too_big_for_memory_before_building_it(tmp_path):
    from lstm_mnist.config import Config, save_config
    folder = tmp_path / "huge"
    (folder / "best").mkdir(parents=True)
    save_config(str(folder / "config.json"), Config(hidden=(65536,), head_hidden=65536))
    (folder / "best" / "checkpoint").write_text('model_checkpoint_path: "model-1"\n')
    (folder / "best" / "model-1.index").write_bytes(b"")
    started = time.time()
    result = run_script("eval.py", "--checkpoint", str(folder))
    assert "more than this machine's" in _one_line(result, "eval.py")
    assert time.time() - started < 120


@pytest.mark.slow
def test_predict_prints_a_file_name_with_control_characters_escaped(tiny_checkpoint, tmp_path,
                                                                    mnist):
    path = tmp_path / "a\nb\x1b[2J.png"
    grey_image(mnist.test.images[0]).save(path, format="PNG")
    result = run_script("predict.py", "--checkpoint", tiny_checkpoint, str(path))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and "\x1b" not in result.stdout
    assert "a\\nb\\x1b[2J.png" in result.stdout


@pytest.mark.slow
def test_a_full_disk_at_the_end_of_a_run_names_the_last_checkpoint_and_the_command(
        tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "curves.png")
    monkeypatch.setattr(figures_module, "write_atomic", full_disk)
    with pytest.raises(UserError, match="no space left on device; the last good checkpoint is "
                                        ".*continue with: python "):
        _train(tmp_path)
