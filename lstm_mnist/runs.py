"""A run's two folders: the files in them, its identity, its lock, and the checks before writing.

A run named R is two folders, `logs/R` and `checkpoints/R`, tied together by a run id that the
config.json of both records. Every check of a new or resumed run (the name, what the folders hold,
whether they can be written, whether another process uses them) runs before anything is created,
replaced or appended to; only folders recognisable as runs of this project, down to their last
file, are ever replaced. A new run's name is taken by creating its folders with exclusive mkdirs
(`RunFolders.claim`), so two processes never both believe a name is free.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from datetime import datetime
from typing import Dict, Iterator, List, Optional, Tuple

from lstm_mnist.errors import UserError
from lstm_mnist.files import read_json, write_atomic

CONFIG_FILE = "config.json"  # in both folders: the model rebuilds itself from the checkpoint folder
METRICS_FILE = "metrics.csv"  # logs/<run>/: one row per epoch
RESULTS_FILE = "results.json"  # logs/<run>/: the best checkpoint's validation and test numbers
BEST, LATEST = "best", "latest"  # checkpoint subfolders of a run
# The training script of the checkout the package runs from (scripts/ is not installed).
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "scripts", "train.py")
LOCK_FILE = ".lock"  # in both folders, held (flock) by the process training the run
# Files written atomically (files.write_atomic) beside a temporary `.<name>.<random>` renamed over
# them: a crash can leave the temporary, which is still one of the run's own files.
ATOMIC_FILES = (CONFIG_FILE, METRICS_FILE, RESULTS_FILE, "curves.png", "epoch_progress.json")
ATOMIC_TEMPORARY = r"\.(?:" + "|".join(map(re.escape, ATOMIC_FILES)) + r")\.[a-z0-9_]+"
# TensorFlow's checkpoint files, and the temporaries it renames them from.
CHECKPOINT_FILE = r"model-\d+\.(?:index|data-\d{5}-of-\d{5})"
CHECKPOINT_TEMPORARIES = (r"checkpoint\.tmp[0-9a-f]+", CHECKPOINT_FILE + r"\.tempstate\d+")
CHECKPOINT_FILES = ("checkpoint", CHECKPOINT_FILE, re.escape("epoch_progress.json"),
                    ATOMIC_TEMPORARY, *CHECKPOINT_TEMPORARIES)
EVENT_FILES = (r"events\.out\.tfevents\.[^/]+",)
EVENT_STREAMS = ("train", "validation", "validation_cropped", "steps")  # TensorBoard's folders
# Everything a run of this project writes, as a tree: a pattern of names maps to None (a file) or
# to the patterns of what the folder of that name holds. --overwrite deletes nothing else.
LOG_TREE: Dict[str, Optional[dict]] = {
    **{re.escape(name): None for name in (CONFIG_FILE, METRICS_FILE, RESULTS_FILE, "train.log",
                                          "curves.png", LOCK_FILE)},
    ATOMIC_TEMPORARY: None,
    **{pattern: None for pattern in EVENT_FILES},  # the run's own stream (monitor.RUN_STREAM)
    "|".join(EVENT_STREAMS): {pattern: None for pattern in EVENT_FILES}}
CHECKPOINT_TREE: Dict[str, Optional[dict]] = {
    re.escape(CONFIG_FILE): None, re.escape(LOCK_FILE): None, ATOMIC_TEMPORARY: None,
    f"{BEST}|{LATEST}": {pattern: None for pattern in CHECKPOINT_FILES}}
# Characters that tf.train.Saver would read as a glob pattern when it deletes old checkpoints.
GLOB_CHARACTERS = "?*["
# A default name taken in the same second gets a suffix: name-2, name-3, ... up to this many.
MAX_SAME_SECOND_RUNS = 1000
# Deeper folder arguments are mistakes (and beyond what the file system takes): refused at once.
MAX_FOLDER_DEPTH = 64


class RunFolders:
    """Paths of one run's log and checkpoint folders and of the files in them."""

    def __init__(self, logs: str, checkpoints: str):
        self.logs, self.checkpoints = os.path.normpath(logs), os.path.normpath(checkpoints)
        self.name = os.path.basename(self.checkpoints)

    @classmethod
    def named(cls, name: str, logdir: str, checkpoint_dir: str) -> "RunFolders":
        """The folders of a new run `name`; raises UserError unless the name and both parent
        folders pass `check_path_text` and the two parents are apart."""
        check_path_text("run name", name)
        if os.sep in name or name in (".", "..") or name.startswith("."):
            raise UserError(f"run name {name!r} must be a plain folder name")
        folders = cls(os.path.join(logdir, name), os.path.join(checkpoint_dir, name))
        folders.check_paths()
        return folders

    @classmethod
    def for_new_run(cls, name: Optional[str], logdir: str, checkpoint_dir: str) -> "RunFolders":
        """`named`, with a timestamp for a name of None (made unique by `claim`)."""
        return cls.named(default_run_name() if name is None else name, logdir, checkpoint_dir)

    def check_paths(self):
        """Raises UserError unless both folders' paths are plain text, no dangling link lies on
        them, and neither parent folder (--logdir, --checkpoint-dir) is, or lies inside, the
        other."""
        for what, folder in (("--logdir", self.logs), ("--checkpoint-dir", self.checkpoints)):
            check_path_text(what, folder)
            check_no_dangling_link(folder)
        logdir, checkpoint_dir = (os.path.dirname(os.path.abspath(folder)) for folder in self.both)
        logs, checkpoints = os.path.realpath(logdir), os.path.realpath(checkpoint_dir)
        if inside(logs, checkpoints) or inside(checkpoints, logs):
            raise UserError(f"--logdir {logdir} and --checkpoint-dir {checkpoint_dir} must be "
                            "apart: give two folders neither of which is inside the other")

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
        return " ".join(shlex.quote(word) for word in (
            "python", TRAIN_SCRIPT, "--resume", os.path.abspath(self.checkpoints),
            "--logdir", os.path.dirname(os.path.abspath(self.logs))))

    def check_new(self, overwrite: bool, unique: bool = False):
        """Raises UserError unless a new run can be created here; creates and changes nothing.

        An existing folder of the name is an error, unless `unique` (the name gets a suffix when
        claimed) or `overwrite` and `check_replaceable` passes. Only a first answer: `claim`
        decides, atomically.
        """
        existing = self.existing()
        if existing and not overwrite and not unique:
            raise self._taken(existing[0])
        if existing and overwrite:
            self.check_replaceable()
        for folder in self.both:
            check_writable(os.path.dirname(os.path.abspath(folder)))

    def existing(self) -> List[str]:
        return [folder for folder in self.both if os.path.lexists(folder)]

    def _taken(self, folder: str) -> UserError:
        return UserError(f"run {self.name!r} already exists ({folder}); choose another "
                         "--run-name, continue it with --resume, or pass --overwrite")

    def check_replaceable(self):
        """Raises UserError unless --overwrite may delete what exists of this run: each folder
        holds nothing but files a run of this project writes, down to the last entry, every entry
        can be deleted, and the two folders are halves of one run (the same run id)."""
        existing = self.existing()
        for folder in existing:
            check_run_tree(folder, LOG_TREE if folder == self.logs else CHECKPOINT_TREE)
        if len(existing) == 2 and run_identity(self.log_config) != \
                run_identity(self.checkpoint_config):
            raise UserError(f"{self.logs} and {self.checkpoints} belong to different runs (their "
                            f"{CONFIG_FILE} differ); --overwrite replaces one run, delete or move "
                            "them yourself")

    @contextlib.contextmanager
    def claim(self, overwrite: bool, unique: bool) -> Iterator[None]:
        """Creates both folders, each with an exclusive mkdir, and holds their lock while active:
        of two processes claiming a name, one gets it and the other is refused, never both.

        Args:
          overwrite: first delete the run of this name, checked again under its lock.
          unique: the name is a default one: when taken, claim the first free `name-2`,
            `name-3`, ... instead; the folders then name the run claimed.
        """
        if overwrite and self.existing():
            self.check_replaceable()  # before the lock creates a file in the folders
            with RunLock(self.existing(), self.name):
                self.check_replaceable()
                self.replace_existing()
        base = self.name
        for number in range(2, MAX_SAME_SECOND_RUNS + 2):
            taken = self._create_exclusively()
            if not taken:
                with RunLock(self.both, self.name):
                    yield
                return
            if not unique:
                raise self._taken(taken)
            self._rename(f"{base}-{number}")
        raise UserError(f"run names {base}-2 ... {base}-{MAX_SAME_SECOND_RUNS + 1} are all taken; "
                        "give --run-name")

    def _create_exclusively(self) -> Optional[str]:
        """Creates both folders; returns the first that existed already (creating nothing)."""
        created = []
        try:
            for folder in self.both:
                os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
                os.mkdir(folder)
                created.append(folder)
        except OSError as error:
            for mine in created:
                os.rmdir(mine)  # empty: this process made it a moment ago
            if isinstance(error, FileExistsError) and error.filename == folder:
                return folder
            raise UserError(f"{folder}: cannot create folder ({error.strerror})") from None
        return None

    def _rename(self, name: str):
        self.logs = os.path.join(os.path.dirname(self.logs), name)
        self.checkpoints = os.path.join(os.path.dirname(self.checkpoints), name)
        self.name = name

    def check_resumable(self):
        """Raises UserError unless both folders exist, belong to the same run and can be written."""
        for folder in self.both:
            if not os.path.isdir(folder):
                raise UserError(f"{folder}: the run's folder is missing"
                                + (" (pass --logdir)" if folder == self.logs else ""))
        for config in (self.log_config, self.checkpoint_config):
            if run_identity(config) is None:
                raise UserError(f"{config}: missing, unreadable or not a run's {CONFIG_FILE}; "
                                "the run cannot be resumed without it")
        if run_identity(self.log_config) != run_identity(self.checkpoint_config):
            raise UserError(f"{self.logs} belongs to another run than {self.checkpoints} (their "
                            f"{CONFIG_FILE} differ); pass the --logdir that holds this run's logs")
        for folder in self.both + [self.latest, self.best]:
            if os.path.isdir(folder):
                check_writable(folder)
        for name in EVENT_STREAMS:
            if os.path.isdir(os.path.join(self.logs, name)):
                check_writable(os.path.join(self.logs, name))

    def remove_temporaries(self):
        """Deletes what interrupted writes of this run left: the temporaries of its atomic writes
        and of TensorFlow's checkpoint writes. Only for a run this process has locked."""
        for folder, patterns in ((self.logs, [ATOMIC_TEMPORARY]),
                                 (self.checkpoints, [ATOMIC_TEMPORARY]),
                                 (self.latest, [ATOMIC_TEMPORARY, *CHECKPOINT_TEMPORARIES]),
                                 (self.best, [ATOMIC_TEMPORARY, *CHECKPOINT_TEMPORARIES])):
            for entry in os.listdir(folder) if os.path.isdir(folder) else []:
                path = os.path.join(folder, entry)
                if any(re.fullmatch(pattern, entry) for pattern in patterns) and \
                        os.path.isfile(path) and not os.path.islink(path):
                    os.remove(path)

    def unshare_log(self):
        """Gives train.log an inode of its own if it shares one (a copy made with `cp -al`), so
        that appending to this run's log never writes into another run's."""
        if os.path.isfile(self.train_log) and os.stat(self.train_log).st_nlink > 1:
            with open(self.train_log, "rb") as stream:
                write_atomic(self.train_log, stream.read())

    def replace_existing(self):
        """Deletes the folders of the run being overwritten (checked by `check_replaceable`)."""
        for folder in self.existing():
            shutil.rmtree(folder)

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


def check_run_tree(folder: str, tree: Dict[str, Optional[dict]]):
    """Raises UserError unless `folder` is a real folder of a run of this project that can be
    deleted: its config.json is a run's, every entry below it is a file or folder that `tree`
    allows (no link anywhere), and every folder in it, and its parent, can be written."""
    if os.path.islink(folder):
        raise UserError(f"{folder}: is a symbolic link; --overwrite replaces only a run's own "
                        "folder, never a link or what it points to")
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: exists and is not a folder; not replacing it")
    if run_identity(os.path.join(folder, CONFIG_FILE)) is None:
        raise _not_a_run(folder, f"no lstm_mnist {CONFIG_FILE}")
    for path, allowed in _foreign_entries(folder, tree):
        if not allowed:
            raise _not_a_run(folder, f"it holds {os.path.relpath(path, folder)!r}")
    for parent in [os.path.dirname(os.path.abspath(folder))] + list(_folders_in(folder)):
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"{parent}: cannot delete what it holds (no write permission); "
                            "--overwrite deletes nothing unless it can delete all of the run")


def _not_a_run(folder: str, what: str) -> UserError:
    return UserError(f"{folder}: not a run of this project ({what}); --overwrite replaces "
                     "only run folders, delete or move it yourself")


def _foreign_entries(folder: str, tree: Dict[str, Optional[dict]]) -> Iterator[Tuple[str, bool]]:
    """(path, allowed) of every entry below `folder`, checked against `tree`."""
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        match = next((pattern for pattern in tree if re.fullmatch(pattern, entry)), None)
        is_folder = os.path.isdir(path) and not os.path.islink(path)
        kind_fits = match is not None and (tree[match] is not None) == is_folder
        regular = is_folder or (os.path.isfile(path) and not os.path.islink(path))
        yield path, kind_fits and regular
        if kind_fits and is_folder:
            yield from _foreign_entries(path, tree[match])


def _folders_in(folder: str) -> Iterator[str]:
    yield folder
    for parent, names, _ in os.walk(folder):
        for name in names:
            yield os.path.join(parent, name)


def check_path_text(what: str, text: str):
    """Raises UserError unless `text` (a run name or a folder argument) is plain text: not empty,
    printable (no newline, escape or other control character), without the characters that
    tf.train.Saver would read as a glob when deleting old checkpoints, and not absurdly deep."""
    if not text:
        raise UserError(f"{what} is empty")
    if not text.isprintable():
        raise UserError(f"{what} {text!r} holds a control character (a newline, an escape, ...); "
                        "use printable characters only")
    glob = [character for character in GLOB_CHARACTERS if character in text]
    if glob:
        raise UserError(f"{what} {text!r} holds {glob[0]!r}, which TensorFlow would read as a "
                        "pattern matching other runs' files; choose a name without ? * [")
    depth = len(os.path.abspath(text).split(os.sep)) - 1
    if depth > MAX_FOLDER_DEPTH:
        raise UserError(f"{what} is {depth} folders deep from /, more than {MAX_FOLDER_DEPTH}; "
                        "choose a shallower folder")


def check_no_dangling_link(path: str):
    """Raises UserError if `path` or a folder above it is a symbolic link to nothing."""
    path = os.path.abspath(path)
    while path != os.path.dirname(path):
        if os.path.islink(path) and not os.path.exists(path):
            raise UserError(f"{path}: is a symbolic link to {os.readlink(path)!r}, which does not "
                            "exist")
        path = os.path.dirname(path)


def inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies below it (both real, absolute paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def run_identity(config_path: str) -> Optional[str]:
    """What identifies the run that wrote `config_path`: its run id, or for runs written before
    run ids existed, the config and data checksums; None if the file is no run config."""
    try:
        document = read_json(config_path)
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
    """The current time, to the second; `RunFolders.claim` makes it unique."""
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
