"""Small helpers shared by the training loop, evaluation, the reports and the scripts."""

import os

from lstm_mnist.errors import UserError

DPI = 100  # figure pixels per inch: a figure of w x h inches is saved as 100w x 100h pixels


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
    """Writes `figure` as a PNG of exactly its size in pixels, creating the folder if needed."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        figure.savefig(path, format="png")
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror})") from None
