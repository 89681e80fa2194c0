"""Writing the files of a run so that a crash or a full disk never leaves half a file."""

import os
import tempfile
from typing import Union


def write_atomic(path: str, content: Union[str, bytes]):
    """Writes `content` (text as UTF-8, or bytes) to `path` so that a crash leaves either the old
    file or the new one, never half.

    The content goes to a temporary file in the same folder, is flushed to disk, then renamed over
    `path` (an atomic operation on POSIX file systems). The file gets the permissions the umask
    gives any new file, as TensorFlow's own files do.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content.encode("utf-8") if isinstance(content, str) else content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _umask() -> int:
    current = os.umask(0)  # the only way to read it is to set it
    os.umask(current)
    return current
