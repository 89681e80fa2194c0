"""Writing the files of a run so that a crash or a full disk never leaves half a file."""

import contextlib
import csv
import errno
import io
import json
import os
import shutil
import stat
import tempfile
from typing import Dict, Iterable, Iterator, List, Union

import numpy as np

# Far above any JSON file this project writes (a config, results, an epoch's sums).
MAX_JSON_BYTES = 2 ** 20


def write_atomic(path: str, content: Union[str, bytes]):
    """Writes `content` (text as UTF-8, or bytes) to `path` so that a crash leaves either the old
    file or the new one, never half.

    The content goes to a temporary file in the same folder, is flushed to disk, then renamed over
    `path` (an atomic operation on POSIX file systems). The file gets the permissions the umask
    gives any new file, as TensorFlow's own files do.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    except OSError as error:  # name the file meant, not the temporary one
        raise OSError(error.errno, error.strerror, path) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content.encode("utf-8") if isinstance(content, str) else content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, OSError):  # name the file meant, not the temporary one
            raise OSError(error.errno, error.strerror, path) from None
        raise


def _umask() -> int:
    current = os.umask(0)  # the only way to read it is to set it
    os.umask(current)
    return current


def write_json(path: str, document) -> None:
    """Writes `document` as indented JSON with sorted keys, atomically."""
    write_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def json_floats(values: Iterable) -> List[float]:
    """float32 values as JSON numbers in their shortest round-trip form: str() of a float32 gives
    0.9999784 where float() would give 0.9999784231185913."""
    return [float(str(np.float32(value))) for value in values]


def read_json(path: str, max_bytes: int = MAX_JSON_BYTES):
    """The JSON document in `path`, read with limits: a regular file of at most `max_bytes`
    (never a FIFO that would block or a device without end), nested at most as deep as Python's
    parser goes. Raises OSError if it cannot be read, ValueError if it is not such a document."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError("not a regular file (a folder, FIFO or device)")
    with open(path, "rb") as stream:
        content = stream.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    try:
        return json.loads(content.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deep") from None


def read_csv(path: str) -> List[Dict[str, str]]:
    """The rows of a CSV file with a header line; no file is no rows."""
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            return list(csv.DictReader(stream))
    except FileNotFoundError:
        return []


def write_csv(path: str, rows: List[Dict[str, object]]) -> None:
    """Rewrites the whole CSV atomically (floats with 6 decimals), so no row is ever half-written."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(path, buffer.getvalue())


@contextlib.contextmanager
def staged_folder(folder: str) -> Iterator[str]:
    """A temporary folder beside `folder` to write into; on success its files move into `folder`
    (created if missing), so an interrupted or failed writer never leaves half of its files.

    A new `folder` appears whole, by one rename. Into an existing one, each file is renamed over
    its older version, after checking that none of the names is taken by anything but a file.
    """
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(folder) + ".")
    try:
        yield staging
        if not os.path.lexists(folder):
            os.rename(staging, folder)
            return
        names = sorted(os.listdir(staging))
        for name in names:
            target = os.path.join(folder, name)
            if os.path.lexists(target) and (os.path.islink(target) or not os.path.isfile(target)):
                raise OSError(errno.EEXIST, "exists and is not a file; nothing was replaced",
                              target)
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
