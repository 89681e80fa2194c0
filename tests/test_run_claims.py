"""A run's name is claimed atomically, names are only names, and --overwrite checks the whole run
before deleting anything (issue 25). These test runs.py directly, on folders shaped like runs:
no TensorFlow."""

import json
import os
import shlex
import subprocess
import sys

import pytest

from helpers import ROOT, assert_one_line_error, run_script
from lstm_mnist.errors import UserError
from lstm_mnist.runs import RunFolders


def _fake_run(tmp_path, name="r", run_id="a"):
    """A finished run's folders as this project writes them, temporaries of a crash included."""
    folders = RunFolders(str(tmp_path / "logs" / name), str(tmp_path / "ck" / name))
    files = {"config.json": json.dumps({"config": {}, "run_id": run_id}), "metrics.csv": "epoch\n",
             "train.log": "", "results.json": "{}", ".metrics.csv.k2x_9abq": "",
             "train/events.out.tfevents.1796667409.vm": ""}
    checkpoint_files = {"config.json": json.dumps({"config": {}, "run_id": run_id}),
                        "latest/checkpoint": "", "latest/model-8.index": "",
                        "latest/model-8.data-00000-of-00001": "",
                        "latest/model-9.index.tempstate1234": "",
                        "best/checkpoint.tmp0123abcd": "", "best/model-2.index": ""}
    for folder, contents in ((folders.logs, files), (folders.checkpoints, checkpoint_files)):
        for path, text in contents.items():
            os.makedirs(os.path.dirname(os.path.join(folder, path)), exist_ok=True)
            with open(os.path.join(folder, path), "w") as stream:
                stream.write(text)
    return folders


def _tree(folder):
    return sorted(os.path.relpath(os.path.join(parent, name), folder)
                  for parent, folders, names in os.walk(folder) for name in folders + names)


def _claim(folders, overwrite=False, unique=False):
    with folders.claim(overwrite, unique):
        pass


# 1. The claim.

def test_a_second_claim_of_a_taken_name_is_refused_and_deletes_nothing(tmp_path):
    existing = _fake_run(tmp_path)
    before = _tree(tmp_path)
    second = RunFolders.named("r", str(tmp_path / "logs"), str(tmp_path / "ck"))
    with pytest.raises(UserError, match="already exists"):
        _claim(second)
    assert _tree(tmp_path) == before
    # Half a run (only its checkpoint folder) blocks the name too, and the claim leaves no log
    # folder behind.
    os.rename(existing.logs, tmp_path / "moved")
    with pytest.raises(UserError, match="already exists"):
        _claim(second)
    assert not os.path.exists(existing.logs)


def test_of_many_processes_claiming_one_name_at_once_exactly_one_gets_it(tmp_path):
    claim = ("import sys; from lstm_mnist.runs import RunFolders\n"
             "folders = RunFolders.named('r', sys.argv[1] + '/logs', sys.argv[1] + '/ck')\n"
             "with folders.claim(False, False): print('claimed')")
    processes = [subprocess.Popen([sys.executable, "-c", claim, str(tmp_path)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(8)]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert sum(stdout == "claimed\n" for stdout, _ in outputs) == 1
    assert sum("already exists" in stderr for _, stderr in outputs) == 7


def test_default_names_of_runs_started_in_the_same_second_are_unique(tmp_path):
    names = []
    for _ in range(4):
        folders = RunFolders.named("20261207-182500", str(tmp_path / "logs"), str(tmp_path / "ck"))
        folders.check_new(overwrite=False, unique=True)
        _claim(folders, unique=True)
        names.append(folders.name)
    assert names == ["20261207-182500", "20261207-182500-2", "20261207-182500-3",
                     "20261207-182500-4"]
    assert sorted(os.listdir(tmp_path / "logs")) == sorted(os.listdir(tmp_path / "ck")) == names


# 2. Names are names.

@pytest.mark.parametrize("name", ["a?", "*", "a[1]", "line\nbreak", "\x1b[2Jclear", "bell\a", ""])
def test_run_names_and_folders_that_are_not_plain_text_are_refused(tmp_path, name):
    for run_name, logdir, checkpoint_dir in ((name, "logs", "ck"), ("r", f"logs/{name}x", "ck"),
                                             ("r", "logs", f"{name}x"))[:3 if name else 1]:
        with pytest.raises(UserError) as refused:
            RunFolders.named(run_name, str(tmp_path / logdir), str(tmp_path / checkpoint_dir))
        assert str(refused.value).isprintable(), repr(str(refused.value))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, fragment", [
    (["--run-name", "a\x1b[2Jb"], "run name 'a\\x1b[2Jb' holds a control character"),
    (["--run-name", "*"], "holds '*', which TensorFlow would read as a pattern"),
    (["--run-name", ""], "run name is empty"),
    (["--logdir", "same", "--checkpoint-dir", "same"], "must be apart")])
def test_train_script_refuses_bad_names_at_once_in_one_printable_line(tmp_path, args, fragment):
    result = run_script("train.py", *args, cwd=tmp_path)  # refused before TensorFlow loads
    assert_one_line_error(result, fragment)
    assert result.stderr.rstrip("\n").isprintable()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("logdir, checkpoint_dir", [("runs", "runs"), ("runs", "runs/ck"),
                                                    ("runs/logs", "runs"), ("a/../runs", "runs")])
def test_a_log_folder_and_a_checkpoint_folder_that_overlap_are_refused(
        tmp_path, logdir, checkpoint_dir):
    with pytest.raises(UserError, match="must be apart"):
        RunFolders.named("r", str(tmp_path / logdir), str(tmp_path / checkpoint_dir))


def test_a_dangling_link_and_an_absurd_depth_are_refused_creating_nothing(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "logs")
    with pytest.raises(UserError, match="does not exist"):
        RunFolders.named("r", str(tmp_path / "logs" / "deeper"), str(tmp_path / "ck"))
    deep = os.path.join(str(tmp_path), *["d"] * 600)
    with pytest.raises(UserError, match="folders deep"):
        RunFolders.named("r", deep, str(tmp_path / "ck"))
    assert os.listdir(tmp_path) == ["logs"]


def test_the_resume_command_is_shell_quoted(tmp_path):
    folders = RunFolders.named("r", str(tmp_path / "my logs"), str(tmp_path / "it's ck"))
    words = shlex.split(folders.resume_command())
    assert words[2:] == ["--resume", str(tmp_path / "it's ck" / "r"),
                         "--logdir", str(tmp_path / "my logs")]


# 3. --overwrite checks all the way down.

def test_overwrite_replaces_a_run_with_its_crash_temporaries(tmp_path):
    folders = _fake_run(tmp_path)
    folders.check_replaceable()
    _claim(folders, overwrite=True)
    assert _tree(folders.logs) == _tree(folders.checkpoints) == [".lock"]


@pytest.mark.parametrize("intruder", ["logs/r/train/nested/config.json", "ck/r/latest/NOTES.txt",
                                      "logs/r/validation/model-1.index", "ck/r/best/best"])
def test_overwrite_refuses_a_run_holding_anything_else_anywhere_and_touches_nothing(
        tmp_path, intruder):
    folders = _fake_run(tmp_path)
    os.makedirs(os.path.dirname(tmp_path / intruder), exist_ok=True)
    (tmp_path / intruder).write_text("mine")
    before = _tree(tmp_path)
    with pytest.raises(UserError, match="not a run of this project"):
        folders.check_new(overwrite=True)
    with pytest.raises(UserError, match="not a run of this project"):
        _claim(folders, overwrite=True)
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_link_inside_a_run(tmp_path):
    folders = _fake_run(tmp_path)
    os.symlink(tmp_path / "elsewhere", os.path.join(folders.latest, "model-9.index"))
    with pytest.raises(UserError, match="not a run of this project"):
        _claim(folders, overwrite=True)


def test_overwrite_refuses_halves_of_two_different_runs(tmp_path):
    folders = _fake_run(tmp_path)
    other = _fake_run(tmp_path / "other", run_id="b")
    os.rename(other.checkpoints, tmp_path / "spare")
    os.rename(folders.checkpoints, other.checkpoints)
    os.rename(tmp_path / "spare", folders.checkpoints)
    before = _tree(tmp_path)
    with pytest.raises(UserError, match="belong to different runs"):
        _claim(folders, overwrite=True)
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_run_with_a_folder_it_cannot_empty(tmp_path, monkeypatch):
    folders = _fake_run(tmp_path)
    read_only = os.path.realpath(folders.best)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: os.path.realpath(path) != read_only
                        and access(path, mode))
    before = _tree(tmp_path)
    with pytest.raises(UserError, match="cannot delete"):
        _claim(folders, overwrite=True)
    assert _tree(tmp_path) == before


def test_resume_names_an_unreadable_log_config_instead_of_blaming_another_run(tmp_path):
    folders = _fake_run(tmp_path)
    with open(folders.log_config, "w") as stream:
        stream.write("{not json")
    with pytest.raises(UserError, match="config.json: missing, unreadable or not a run's"):
        folders.check_resumable()
