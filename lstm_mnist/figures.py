"""Matplotlib figures made without pyplot and saved as PNGs of a known size in pixels."""

import io
import os

from lstm_mnist.errors import UserError
from lstm_mnist.files import write_atomic

DPI = 100  # figure pixels per inch: a figure of w x h inches is saved as 100w x 100h pixels
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# matplotlib's PNGs name it in a text chunk before the image data, near the start of the file.
MATPLOTLIB_TAG = b"Software\x00Matplotlib"
PNG_HEAD_BYTES = 4096


def new_figure(width: float, height: float):
    """An empty matplotlib Figure of `width` x `height` inches, drawn by the Agg backend.

    The Figure is made directly, not through pyplot: no display is needed, no global state is
    touched, and matplotlib is imported only when a figure is actually made.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str):
    """Writes `figure` as a PNG of exactly its size in pixels, creating the folder if needed.

    The PNG is drawn in memory and renamed into place, so an interrupted save never leaves half
    an image over an older one. It replaces only a picture matplotlib drew (`check_replaceable`).
    """
    check_replaceable(path)
    png = figure_png(figure)
    # An OSError goes on as it is, naming the file: at the end of a run, `lifecycle` turns a full
    # disk into the line that names the last good checkpoint and the command that continues.
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, png)


def figure_png(figure) -> bytes:
    """`figure` as PNG bytes, of exactly its size in pixels."""
    png = io.BytesIO()
    figure.savefig(png, format="png")
    return png.getvalue()


def check_replaceable(path: str):
    """Raises UserError if `path` exists and is not a PNG that matplotlib drew (as every picture
    of this project is): a run's metrics, a user's photo or a folder is never drawn over."""
    if not os.path.lexists(path):
        return
    head = b""
    if os.path.isfile(path):
        try:
            with open(path, "rb") as stream:
                head = stream.read(PNG_HEAD_BYTES)
        except OSError as error:
            raise UserError(f"{path}: cannot read ({error.strerror})") from None
    if not (head.startswith(PNG_SIGNATURE) and MATPLOTLIB_TAG in head):
        raise UserError(f"{path}: exists and is not a picture this project drew; not replacing "
                        "it (choose another output file)")
