"""The explain pictures: how a model read digits, drawn from `explain.Explanation`s.

`explanation_figure` (explain.py's picture) is one matplotlib figure per digit: the input as the
LSTM read it, the class probabilities had the sequence ended after each step, the final
prediction, and for every LSTM its three gates and its cell over the steps. Steps are numbered
from 1, as a reader counts rows, and so are layers and pixels; units are sorted, not numbered.

`reading_picture` is the small version TensorBoard shows after every epoch, several digits in
one image drawn pixel by pixel, cheap enough to make while training.
"""

from typing import Dict, List

import numpy as np

from lstm_mnist.figures import new_figure
from lstm_mnist.sequences import PIXELS_PER_STEP

GATES = ("input_gate", "forget_gate", "output_gate")
READING_SCALE = 3  # screen pixels per pixel of the reading picture
WHITE, GREY, BLUE = np.array([1.0, 1.0, 1.0]), np.array([0.6, 0.6, 0.6]), np.array([0.1, 0.3, 0.7])
BACKWARD = ", backward"  # in the names of backward LSTMs (Explanation.lstms), read from the end


def explanation_figure(explanation):
    """One figure: the input as the model read it, its class probabilities after every step (or
    only the final ones, for a bidirectional model), and every LSTM's gates and cell over the
    steps."""
    lstms = explanation.lstms
    top_height, row_height = 4.2, 2.5
    figure = new_figure(16, top_height + row_height * len(lstms) + 0.5)
    rows = figure.subfigures(2, 1, height_ratios=[top_height, row_height * len(lstms)])
    _draw_input_and_probabilities(rows[0], explanation)
    lstm_rows = rows[1].subfigures(len(lstms), 1, squeeze=False)[:, 0]
    for row, (name, values) in zip(lstm_rows, lstms.items()):
        _draw_lstm(row, name, values)
    item = explanation.input
    label = "" if item.label is None else f", true digit {item.label}"
    figure.suptitle(f"How the LSTM reads {item.source}: predicts {explanation.digit} "
                    f"(p={explanation.probabilities[explanation.digit]:.3f}){label}",
                    fontsize=14, fontweight="bold")
    return figure


def _draw_input_and_probabilities(figure, explanation):
    item, steps = explanation.input, len(explanation.sequence)
    digits = len(explanation.probabilities)
    settled = explanation.settled_at_step
    if item.crop is None:  # the sequence is the image itself: one panel shows both
        sequence_axes, steps_axes, final_axes = figure.subplots(1, 3, width_ratios=[1, 1.2, 1.2])
        sequence_title = "the image, read top to bottom:\none row of 28 pixels per step"
    else:
        image_axes, sequence_axes, steps_axes, final_axes = figure.subplots(
            1, 4, width_ratios=[1, 1, 1.2, 1.2])
        from matplotlib.patches import Rectangle
        height, width, top, left = (int(field[0]) for field in item.crop)
        image_axes.imshow(item.image, cmap="gray_r", vmin=0, vmax=1)
        image_axes.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False,
                                       edgecolor="tab:red", linewidth=2))
        image_axes.set_title(f"the image; in red, the crop\nit reads ({height} rows x "
                             f"{width} columns)")
        image_axes.set(xticks=[], yticks=[])
        sequence_title = ("what the LSTM reads: the crop\nflattened row by row, cut into\n"
                          "28 pixels per step")

    step_ticks = _step_ticks(steps)
    sequence_axes.imshow(explanation.sequence, cmap="gray_r", vmin=0, vmax=1, aspect="auto",
                         extent=(0.5, PIXELS_PER_STEP + 0.5, steps + 0.5, 0.5))
    sequence_axes.set(title=sequence_title, xlabel="pixel", ylabel="step", yticks=step_ticks,
                      xticks=[1, PIXELS_PER_STEP])
    if settled is not None:
        # The line sits above the row of step `settled`: from that step on the answer is fixed.
        for axes in (sequence_axes, steps_axes):
            axes.axhline(settled - 0.5, color="tab:red", linewidth=1.5, linestyle="--")
        sequence_axes.annotate(f"from step {settled} on,\nthe answer stays {explanation.digit}",
                               (PIXELS_PER_STEP + 0.5, settled - 0.5), xytext=(4, 0),
                               textcoords="offset points", color="tab:red", fontsize=9,
                               va="center", annotation_clip=False)

    if explanation.step_probabilities is None:
        steps_axes.axis("off")
        steps_axes.text(0.5, 0.5, "Bidirectional model: no per-step\nprobabilities. Its backward "
                        "LSTM reads\nthe sequence from the last step,\nso at every step it has "
                        "already\nseen the rows below: a prediction\n'after step t' would peek "
                        "ahead.\nBelow: both directions' gates;\nright: the final prediction.",
                        ha="center", va="center", fontsize=10, transform=steps_axes.transAxes,
                        bbox={"boxstyle": "round", "facecolor": "lightyellow"})
    else:
        shown = steps_axes.imshow(explanation.step_probabilities, cmap="Blues", vmin=0, vmax=1,
                                  aspect="auto", extent=(-0.5, digits - 0.5, steps + 0.5, 0.5))
        steps_axes.set(title="probability of each digit\nif the sequence ended after this step",
                       xlabel="digit", ylabel="step", xticks=range(digits), yticks=step_ticks)
        figure.colorbar(shown, ax=steps_axes, label="probability", shrink=0.9)

    _draw_final_probabilities(final_axes, explanation)
    if item.label is not None and item.label != explanation.digit:
        # A wrong answer: its true digit's probability may be too small to see as a bar.
        digit_axes = [final_axes] + ([] if explanation.step_probabilities is None else [steps_axes])
        for axes in digit_axes:
            axes.get_xticklabels()[item.label].set(color="tab:orange", fontweight="bold")
        final_axes.set_xlabel("digit (orange: the true one)")


def _draw_final_probabilities(axes, explanation):
    """Ten bars, the predicted digit's in blue."""
    digits = len(explanation.probabilities)
    colours = ["tab:gray"] * digits
    colours[explanation.digit] = "tab:blue"
    axes.bar(range(digits), explanation.probabilities, color=colours)
    axes.set(title="the model's prediction:\nprobabilities after the last step", xlabel="digit",
             xticks=range(digits), ylim=(0, 1.05))


def _draw_lstm(figure, name: str, values: Dict[str, np.ndarray]):
    """Four units x steps heatmaps of one LSTM: its three gates (0 closed, 1 open) and its cell."""
    steps, units = values["cell"].shape
    # Sorted by the final cell value, in all four panels alike: units that end up holding a
    # similar memory sit together, instead of a random-looking order. A backward LSTM ends at
    # step 1.
    backward = BACKWARD in name
    order = np.argsort(values["cell"][0 if backward else -1])
    values = {field: value[:, order] for field, value in values.items()}
    panels = figure.subplots(1, 4)
    extent = (0.5, steps + 0.5, units - 0.5, -0.5)
    titles = {"input_gate": "input gate: how much new\ninformation enters the cell",
              "forget_gate": "forget gate: how much of the\ncell is kept (1 = all)",
              "output_gate": "output gate: how much of the\ncell is shown to the output"}
    for axes, gate in zip(panels, GATES):
        gate_image = axes.imshow(values[gate].T, cmap="viridis", vmin=0, vmax=1, aspect="auto",
                                 extent=extent, interpolation="nearest")
        axes.set_title(titles[gate], fontsize=10)
    limit = max(float(np.abs(values["cell"]).max()), 1e-6)
    cell_image = panels[3].imshow(values["cell"].T, cmap="RdBu_r", vmin=-limit, vmax=limit,
                                  aspect="auto", extent=extent, interpolation="nearest")
    panels[3].set_title("cell state c: the LSTM's memory", fontsize=10)
    for axes in panels:
        axes.set(xlabel="step", xticks=_step_ticks(steps), yticks=[])
    panels[0].set_ylabel(f"{units} units, sorted by their\ncell value after reading")
    figure.colorbar(gate_image, ax=panels[:3].tolist(), label="gate value (0 closed, 1 open)",
                    shrink=0.9, pad=0.01)
    figure.colorbar(cell_image, ax=panels[3], label="cell value", shrink=0.9)
    reading = f": reads from step {steps} back to step 1" if backward else ""
    figure.suptitle(f"LSTM {name}{reading}", fontsize=12, fontweight="bold", x=0.02, ha="left")
    figure.supxlabel("What to look for: units whose forget gate stays near 1 (yellow) carry a "
                     "memory across many rows; the input gate opens where the strokes that matter "
                     "are written; cells that change colour at a row are what that row taught "
                     "the LSTM", fontsize=9, x=0.02, ha="left")


def _step_ticks(steps: int) -> List[int]:
    return [1] + list(range(5, steps + 1, 5)) + ([steps] if steps % 5 else [])


def reading_picture(explanations) -> np.ndarray:
    """How a model read several digits, one row each: the pixels it read, one step per line; the
    probability of each digit had the sequence ended after each step (the darker, the more
    probable; left blank for a bidirectional model, which has none); the final probabilities as
    ten bars, the predicted digit's blue.

    Returns:
      uint8 RGB `[height, width, 3]`.
    """
    rows = []
    for explanation in explanations:
        digits = len(explanation.probabilities)
        height = max(PIXELS_PER_STEP, len(explanation.sequence))
        pixels = _shade(_padded(explanation.sequence, height), WHITE, np.zeros(3))
        steps = np.zeros((height, digits)) if explanation.step_probabilities is None \
            else _padded(explanation.step_probabilities, height)
        bar_heights = np.round(explanation.probabilities * height).astype(int)
        bars = np.arange(height)[::-1, None] < bar_heights[None, :]
        bar_colour = np.where(np.arange(digits) == explanation.digit, 1.0, 0.5)
        panels = [pixels, _shade(steps, WHITE, BLUE), _shade(bars * bar_colour, WHITE, BLUE)]
        # A digit's column three pixels wide: as wide as it is tall, a probability is legible.
        rows.append(_side_by_side([pixels] + [np.repeat(panel, 3, axis=1) for panel in panels[1:]],
                                  axis=1))
    picture = _side_by_side(rows, axis=0)
    picture = np.kron(picture, np.ones((READING_SCALE, READING_SCALE, 1)))
    return np.round(255 * picture).astype(np.uint8)


def _padded(values: np.ndarray, height: int) -> np.ndarray:
    """`[steps, width]` values with zero rows added below, to `height` rows."""
    return np.pad(values, ((0, height - len(values)), (0, 0)))


def _shade(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """`[h, w]` values in [0, 1] as RGB `[h, w, 3]`, from colour `low` at 0 to `high` at 1."""
    return low + np.clip(values, 0.0, 1.0)[..., None] * (high - low)


def _side_by_side(panels: List[np.ndarray], axis: int) -> np.ndarray:
    """RGB panels joined along `axis` with a grey line of one pixel between them."""
    joined = [panels[0]]
    for panel in panels[1:]:
        line_shape = list(panel.shape)
        line_shape[axis] = 1
        joined += [np.broadcast_to(GREY, line_shape), panel]
    return np.concatenate(joined, axis=axis)
