"""A run's two folders: the files in them, its identity, its lock, and the checks before writing.

A run named R is two folders, `logs/R` and `checkpoints/R`, tied together by a run id that the
config.json of both records. Every check of a new or resumed run (the name, what the folders hold,
whether they can be written, whether another process uses them) runs before anything is created,
replaced or appended to; only folders recognisable as runs of this project are ever replaced.
"""

import errno
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from datetime import datetime
from typing import List, Optional

from lstm_mnist.errors import UserError

CONFIG_FILE = "config.json"  # in both folders: the model rebuilds itself from the checkpoint folder
METRICS_FILE = "metrics.csv"  # logs/<run>/: one row per epoch
RESULTS_FILE = "results.json"  # logs/<run>/: the best checkpoint's validation and test numbers
BEST, LATEST = "best", "latest"  # checkpoint subfolders of a run
# The training script of the checkout the package runs from (scripts/ is not installed).
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "scripts", "train.py")
LOCK_FILE = ".lock"  # in both folders, held (flock) by the process training the run
# What each folder of a run may hold; a folder with anything else is not replaced by --overwrite.
LOG_ENTRIES = {CONFIG_FILE, METRICS_FILE, RESULTS_FILE, "train.log", "curves.png", "train",
               "validation", "validation_cropped", "steps", LOCK_FILE}
CHECKPOINT_ENTRIES = {CONFIG_FILE, BEST, LATEST, LOCK_FILE}


class RunFolders:
    """Paths of one run's log and checkpoint folders and of the files in them."""

    def __init__(self, logs: str, checkpoints: str):
        self.logs, self.checkpoints = os.path.normpath(logs), os.path.normpath(checkpoints)
        self.name = os.path.basename(self.checkpoints)

    @classmethod
    def named(cls, name: str, logdir: str, checkpoint_dir: str) -> "RunFolders":
        if not name or os.sep in name or name in (".", "..") or name.startswith("."):
            raise UserError(f"run name {name!r} must be a plain folder name")
        return cls(os.path.join(logdir, name), os.path.join(checkpoint_dir, name))

    log_config = property(lambda self: os.path.join(self.logs, CONFIG_FILE))
    checkpoint_config = property(lambda self: os.path.join(self.checkpoints, CONFIG_FILE))
    metrics = property(lambda self: os.path.join(self.logs, METRICS_FILE))
    results = property(lambda self: os.path.join(self.logs, RESULTS_FILE))
    train_log = property(lambda self: os.path.join(self.logs, "train.log"))
    curves = property(lambda self: os.path.join(self.logs, "curves.png"))
    latest = property(lambda self: os.path.join(self.checkpoints, LATEST))
    best = property(lambda self: os.path.join(self.checkpoints, BEST))
    # An interrupted epoch's sums, beside the mid-epoch latest checkpoint they belong to.
    epoch_progress = property(lambda self: os.path.join(self.latest, "epoch_progress.json"))

    def events(self, stream: str) -> str:
        """The TensorBoard folder of one stream of summaries ("train", "validation", ...)."""
        return os.path.join(self.logs, stream)

    @property
    def both(self) -> List[str]:
        return [self.logs, self.checkpoints]

    def resume_command(self) -> str:
        """The command that continues this run, from any folder: absolute paths throughout."""
        return (f"python {TRAIN_SCRIPT} --resume {os.path.abspath(self.checkpoints)} "
                f"--logdir {os.path.dirname(os.path.abspath(self.logs))}")

    def check_new(self, overwrite: bool):
        """Raises UserError unless a new run can be created here; creates and changes nothing.

        An existing folder of the name is an error, unless `overwrite` and it is a run of this
        project (a real folder holding only what runs write) that no process is using.
        """
        existing = [folder for folder in self.both if os.path.lexists(folder)]
        if existing and not overwrite:
            raise UserError(f"run {self.name!r} already exists ({existing[0]}); choose another "
                            "--run-name, continue it with --resume, or pass --overwrite")
        for folder in existing:
            expected = LOG_ENTRIES if folder == self.logs else CHECKPOINT_ENTRIES
            refuse_unless_run_folder(folder, expected)
        for folder in self.both:
            check_writable(os.path.dirname(os.path.abspath(folder)))

    def check_resumable(self):
        """Raises UserError unless both folders exist, belong to the same run and can be written."""
        for folder in self.both:
            if not os.path.isdir(folder):
                raise UserError(f"{folder}: the run's folder is missing"
                                + (" (pass --logdir)" if folder == self.logs else ""))
        if run_identity(self.log_config) != run_identity(self.checkpoint_config):
            raise UserError(f"{self.logs} belongs to another run than {self.checkpoints} (their "
                            f"{CONFIG_FILE} differ); pass the --logdir that holds this run's logs")
        for folder in self.both + [self.latest, self.best]:
            if os.path.isdir(folder):
                check_writable(folder)
        for name in os.listdir(self.logs):
            if os.path.isdir(os.path.join(self.logs, name)) and name in LOG_ENTRIES:
                check_writable(os.path.join(self.logs, name))

    def replace_existing(self):
        """Deletes the folders of the run being overwritten (checked by `check_new`)."""
        for folder in self.both:
            if os.path.lexists(folder):
                shutil.rmtree(folder)

    def create(self):
        for folder in self.both:
            try:
                os.makedirs(folder)
            except OSError as error:
                raise UserError(f"{folder}: cannot create folder ({error.strerror})") from None

    def remove(self):
        """Deletes both folders: only for a run this process created and that saved nothing."""
        for folder in self.both:
            shutil.rmtree(folder, ignore_errors=True)


class RunLock:
    """An exclusive lock on a run's folders, so that no two processes train or replace it at once.

    `flock` locks end with the process, even on kill -9, so a dead run never stays locked.
    """

    def __init__(self, folders: List[str], name: str):
        self.folders, self.name, self.handles = folders, name, []

    def __enter__(self) -> "RunLock":
        for folder in self.folders:
            try:
                handle = open(os.path.join(folder, LOCK_FILE), "a")
                self.handles.append(handle)
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.__exit__()
                raise UserError(f"run {self.name!r} is in use by another training process "
                                f"({folder}); wait for it to end or stop it first") from None
            except OSError as error:
                self.__exit__()
                raise UserError(f"{folder}: cannot lock the run ({error.strerror})") from None
        return self

    def __exit__(self, *exc_info):
        for handle in self.handles:
            handle.close()  # closing releases the lock
        self.handles = []


def refuse_unless_run_folder(folder: str, expected: set):
    """Raises UserError unless `folder` is a real folder holding only what a run of this project
    writes, with its config.json: the only kind of folder --overwrite may delete."""
    if os.path.islink(folder):
        raise UserError(f"{folder}: is a symbolic link; --overwrite replaces only a run's own "
                        "folder, never a link or what it points to")
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: exists and is not a folder; not replacing it")
    entries = set(os.listdir(folder))
    foreign = sorted(e for e in entries - expected if not e.startswith(".config.json."))
    if CONFIG_FILE not in entries or foreign or run_identity(os.path.join(folder, CONFIG_FILE)) \
            is None:
        what = f"it holds {foreign[0]!r}" if foreign else f"no lstm_mnist {CONFIG_FILE}"
        raise UserError(f"{folder}: not a run of this project ({what}); --overwrite replaces "
                        "only run folders, delete or move it yourself")


def run_identity(config_path: str) -> Optional[str]:
    """What identifies the run that wrote `config_path`: its run id, or for runs written before
    run ids existed, the config and data checksums; None if the file is no run config."""
    try:
        with open(config_path, encoding="utf-8") as stream:
            document = json.load(stream)
        if not isinstance(document.get("config"), dict):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    return document.get("run_id") or json.dumps([document["config"], document.get("data_sha256")],
                                                sort_keys=True)


def check_writable(folder: str):
    """Raises UserError unless `folder` is, or could be created as, a writable folder.

    Writes and removes a probe file in the nearest existing folder, which also catches read-only
    file systems and a full disk's missing inodes (permission bits alone do not bind root).
    Creates nothing that stays.
    """
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{folder}: cannot create folder ({existing} is not a folder)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = "the disk is full" if error.errno == errno.ENOSPC else error.strerror
        raise UserError(f"{folder}: cannot write there ({reason})") from None


def new_run_id() -> str:
    return uuid.uuid4().hex


def default_run_name() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def code_version() -> Optional[str]:
    """The git commit of the code, with "+changes" if the package, scripts or setup.py differ from
    it; None unless the package runs from a git checkout of this project."""
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(here)

    def git(*args) -> str:
        return subprocess.run(["git", "-C", top, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        if os.path.realpath(git("rev-parse", "--show-toplevel")) != os.path.realpath(top):
            return None  # e.g. an installed copy inside somebody else's repository
        changes = git("status", "--porcelain", "--untracked-files=no", "--",
                      "lstm_mnist", "scripts", "setup.py")
        return git("rev-parse", "HEAD") + ("+changes" if changes else "")
    except (OSError, subprocess.SubprocessError):
        return None
