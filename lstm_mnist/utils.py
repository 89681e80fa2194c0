"""Small helpers shared by the training loop, evaluation and the scripts."""

import os
import tempfile


def write_atomic(path: str, text: str):
    """Writes `text` to `path` so that a crash leaves either the old file or the new one, never half.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed over
    `path` (an atomic operation on POSIX file systems).
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
