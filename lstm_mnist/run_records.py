"""Reading back what a run wrote, to continue it: its metrics history, the sums of an interrupted
epoch, and whether its end was written whole. Everything read here is checked before the run
writes anything, and a damaged file is named in one line."""

import csv
import math
import os
from typing import List, Optional

from lstm_mnist.errors import UserError
from lstm_mnist.files import read_csv, read_json
from lstm_mnist.passes import PassSums
from lstm_mnist.runs import RunFolders

DONE = "done"  # the word of the log line that ends a run
LOG_TAIL_BYTES = 4096  # enough for the last line of train.log


def run_ended(folders: RunFolders) -> bool:
    """Whether the run's end was written whole: results.json, curves.png and the last log line."""
    if not all(map(os.path.isfile, (folders.results, folders.curves, folders.train_log))):
        return False
    with open(folders.train_log, "rb") as stream:
        stream.seek(max(0, os.fstat(stream.fileno()).st_size - LOG_TAIL_BYTES))
        lines = stream.read().decode("utf-8", errors="replace").splitlines()
    return bool(lines) and f" {DONE} in " in lines[-1]


def read_history(path: str) -> List[dict]:
    """The rows of metrics.csv, with `epoch` an int and the numbers the loop reads as floats;
    raises UserError naming the file if it is damaged (before the run writes anything)."""
    try:
        rows = read_csv(path)
        history = [dict(row, epoch=int(row["epoch"]), elapsed_s=float(row["elapsed_s"]),
                        validation_error=float(row["validation_error"])) for row in rows]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: damaged metrics file ({type(error).__name__}: "
                        f"{str(error)[:100]}); restore it, or train the run again with "
                        "--overwrite") from None
    if [row["epoch"] for row in history] != list(range(1, len(history) + 1)) or \
            not all(math.isfinite(row["elapsed_s"]) and math.isfinite(row["validation_error"])
                    for row in history):
        raise UserError(f"{path}: damaged metrics file (epochs not 1, 2, 3... or a number not "
                        "finite); restore it, or train the run again with --overwrite")
    return history


def read_epoch_progress(path: str, step: int) -> Optional[PassSums]:
    """The saved sums of an interrupted epoch, if they belong to the checkpoint at `step`."""
    try:
        saved = read_json(path)
        return PassSums(**saved) if saved.pop("step", None) == step else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
