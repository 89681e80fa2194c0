"""Finding a run's checkpoints inside the folder actually given, and restoring one safely.

TensorFlow's `checkpoint` state file names checkpoints by path, and by default an absolute one: a
copied or moved run would then read, and its savers delete, the original's files. This project's
savers write names relative to their folder, and reading resolves every name, even an absolute one
written by an older version, inside the folder given, so a run only ever touches its own files.
"""

import os
from typing import List, Optional, Tuple

from lstm_mnist.config import Config, load_config
from lstm_mnist.errors import UserError
from lstm_mnist.runs import BEST, CONFIG_FILE, LATEST
from lstm_mnist.tf1 import tf

STATE_FILE = "checkpoint"  # TensorFlow's name for the file that lists a folder's checkpoints
STATE_FILE_MAX_BYTES = 2 ** 16  # enough to tell an empty state file from one with content


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or does not match its config."""


def saver(variables=None) -> tf.train.Saver:
    """A Saver that keeps one checkpoint and names it relative to its folder."""
    return tf.train.Saver(var_list=variables, max_to_keep=1, save_relative_paths=True)


def saved_in(folder: str) -> List[str]:
    """The prefixes of the checkpoints listed in `folder`'s state file, oldest first, resolved
    inside `folder`; [] when nothing was saved there."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return []
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: not a regular file (a folder, FIFO or device), so not a "
                              "checkpoint state file")
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            if not stream.read(STATE_FILE_MAX_BYTES).strip():
                raise CheckpointError(f"{path}: empty checkpoint state file")
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror})") from None
    try:
        state = tf.train.get_checkpoint_state(folder)
    except Exception as error:  # a damaged text proto raises parse errors of several types
        raise CheckpointError(f"{path}: damaged checkpoint state file ({first_line(error)})") \
            from None
    if state is None or not state.model_checkpoint_path:
        raise CheckpointError(f"{path}: empty checkpoint state file")
    names = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    prefixes = [os.path.join(folder, os.path.basename(name)) for name in names]
    for prefix in prefixes:
        if not os.path.exists(prefix + ".index"):
            raise CheckpointError(f"{path}: lists {os.path.basename(prefix)}, but "
                                  f"{prefix}.index is missing")
    return prefixes


def latest_in(folder: str) -> Optional[str]:
    """The newest checkpoint prefix in `folder` (resolved inside it), or None."""
    prefixes = saved_in(folder)
    return prefixes[-1] if prefixes else None


def resolve_checkpoint(path: str) -> Tuple[str, str]:
    """Finds the checkpoint and its config.

    Args:
      path: a run's checkpoint folder (its best checkpoint is used), a folder holding a TensorFlow
        `checkpoint` state file, or one checkpoint prefix (`.../model-12`).

    Returns:
      `(checkpoint prefix, config.json path)`.
    """
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise CheckpointError(f"{path}: no such checkpoint or folder")
    prefix = path
    if os.path.isdir(path):
        prefix = None
        for folder in (os.path.join(path, BEST), os.path.join(path, LATEST), path):
            if os.path.isdir(folder):
                prefix = latest_in(folder)
                if prefix:
                    break
        if not prefix:
            raise CheckpointError(f"{path}: holds no checkpoint")
    elif not os.path.exists(prefix + ".index"):
        raise CheckpointError(f"{path}: not a checkpoint prefix (no {path}.index)")
    folder = os.path.dirname(os.path.abspath(prefix))
    for candidate in (os.path.join(folder, CONFIG_FILE),
                      os.path.join(os.path.dirname(folder), CONFIG_FILE)):
        if os.path.exists(candidate):
            return prefix, candidate
    raise CheckpointError(f"{path}: no {CONFIG_FILE} beside the checkpoint or in its parent folder")


def load_trained(path: str, lstm: Optional[str] = None) -> Tuple[str, Config]:
    """The checkpoint prefix and the config of a trained model (see `resolve_checkpoint`).

    Args:
      path: as for `resolve_checkpoint`.
      lstm: the LSTM implementation to run it with (`Config.lstm`); None keeps the one that
        trained it. Both read the same variables and compute the same numbers.
    """
    prefix, config_path = resolve_checkpoint(path)
    config = load_config(config_path)
    return prefix, config if lstm is None else config.replace(lstm=lstm)


def restore(session: tf.Session, prefix: str, variables, restorer: tf.train.Saver = None):
    """Restores `variables` from `prefix` after checking that names and shapes match.

    Args:
      session: the session to restore into.
      prefix: a checkpoint prefix.
      variables: the variables to restore.
      restorer: a Saver of exactly `variables`, for a finalized graph (default: a new one).
    """
    try:
        stored = dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as error:
        raise _unreadable(prefix, f"unreadable checkpoint index, damaged or truncated "
                                  f"({first_line(error)})") from None
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in stored:
            raise CheckpointError(f"{prefix}: does not match its config: variable {name} "
                                  "is not in the checkpoint")
        if list(stored[name]) != shape:
            raise CheckpointError(f"{prefix}: does not match its config: {name} has shape "
                                  f"{list(stored[name])} in the checkpoint, {shape} in the model")
    try:
        (restorer or tf.train.Saver(var_list=variables)).restore(session, prefix)
    except tf.errors.OpError as error:
        raise _unreadable(prefix, "cannot restore, the checkpoint's data is damaged or "
                                  f"truncated ({first_line(error)})") from None


def _unreadable(prefix: str, problem: str) -> CheckpointError:
    """`problem`, unless the checkpoint vanished: then a run's saver replaced it as it was read."""
    if not os.path.exists(prefix + ".index"):
        return CheckpointError(f"{prefix}: replaced by a newer checkpoint while it was read (is "
                               "its run still training?); run the command again")
    return CheckpointError(f"{prefix}: {problem}")


def first_line(error: Exception) -> str:
    """The informative line of an error message: TensorFlow's graph errors open with a generic
    line, then where the op was defined; the status line comes after."""
    text = getattr(error, "message", None) or str(error)
    noise = ("Graph execution error", "Detected at node", "Node:", "File ", "Hint:", "[[", "{{")
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] not in " \t"]
    informative = [line for line in lines if not line.startswith(noise)]
    return (informative or lines or [error.__class__.__name__])[0][:300]
