"""What TensorBoard shows of a run beyond its curves, as summaries for its FileWriters: the run's
hyperparameters and results for the HParams dashboard, pictures of the model reading a fixed
handful of validation digits, histograms of its weights and gates, and its config as text.

Every run of this project describes the same HParams experiment (`HPARAMS`, `METRICS`), so
`tensorboard --logdir logs` shows all runs in one table, whichever run's description it reads.
A run is one session: it starts when the run is created and ends when its test is written; a
resumed run goes on in the same session.
"""

import io
import json
import os
import re
import time
from datetime import datetime
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from lstm_mnist.config import Config, load_config
from lstm_mnist.errors import UserError
from lstm_mnist.explain import Explanation
from lstm_mnist.explain_figure import GATES, reading_picture
from lstm_mnist.files import read_csv, read_json
from lstm_mnist.runs import EVENT_FILES, METRICS_FILE, RESULTS_FILE, RunFolders, RunLock
from lstm_mnist.tf1 import tf

# Every Config field that shapes the model or its training (the hparams table's columns).
HPARAMS = ("layers", "hidden", "bidirectional", "head_hidden", "dropout", "lstm", "crop",
           "crop_min", "crop_max", "train_subset", "epochs", "batch_size", "lr", "lr_schedule",
           "clip", "seed")
# The run's results the dashboard shows (`best_results`, `test_results`), in the run's own folder.
BEST_KEYS = ("validation_error", "validation_error_cropped")  # of the best epoch, so far
TEST_KEYS = ("test_accuracy", "test_error", "test_error_cropped")
# (stream, tag): "" is the run's own folder, the others its TensorBoard streams.
METRICS = (tuple(("", "best_" + key) for key in BEST_KEYS) + tuple(("", key) for key in TEST_KEYS)
           + (("validation", "error"), ("validation", "loss"), ("validation_cropped", "error"),
              ("train", "error"), ("train", "loss")))
READING_TAG = "reading/validation_digits"
CONFUSION_TAG = "test/confusion_matrix"


def hparams_values(config: Config) -> Dict[str, object]:
    """The config's HPARAMS as the dashboard takes them: numbers, booleans and strings."""
    values = {name: getattr(config, name) for name in HPARAMS}
    values["hidden"] = ",".join(map(str, config.hidden))
    return values


def best_results(values: Dict[str, float]) -> Dict[str, float]:
    """The best epoch's validation errors (a metrics.csv row or results.json) as metrics."""
    return {"best_" + key: values[key] for key in BEST_KEYS if key in values}


def test_results(results: Dict[str, float]) -> Dict[str, float]:
    """The test numbers of results.json as metrics."""
    return {key: results[key] for key in TEST_KEYS if key in results}


def scalars(values: Dict[str, float]) -> bytes:
    """A summary of scalars, `{tag: value}`."""
    return tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                             for tag, value in values.items()]).SerializeToString()


def session_start(config: Config, start_time: Optional[float] = None) -> List[bytes]:
    """The summaries that open a run's HParams session: the experiment's description and the
    run's hyperparameter values, serialized for `FileWriter.add_summary`."""
    from tensorboard.plugins.hparams import api_pb2, summary
    types = {bool: api_pb2.DATA_TYPE_BOOL, str: api_pb2.DATA_TYPE_STRING}
    values = hparams_values(config)
    infos = [api_pb2.HParamInfo(name=name, type=types.get(type(value), api_pb2.DATA_TYPE_FLOAT64))
             for name, value in values.items()]
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(group=group, tag=tag))
               for group, tag in METRICS]
    return [summary.experiment_pb(infos, metrics).SerializeToString(),
            summary.session_start_pb(values, start_time_secs=start_time).SerializeToString()]


def session_end(end_time: Optional[float] = None) -> bytes:
    """The summary that closes a run's HParams session as finished."""
    from tensorboard.plugins.hparams import api_pb2, summary
    return summary.session_end_pb(api_pb2.STATUS_SUCCESS, end_time or time.time()
                                  ).SerializeToString()


def config_text(config: Config) -> bytes:
    """The run's config as a text summary (TensorBoard's Text tab), as config.json writes it."""
    from tensorboard.plugins.text.summary_v2 import text_pb
    document = json.dumps(config.to_dict(), indent=2, sort_keys=True)
    # Markdown: indented, it shows as a code block, one key per line.
    return text_pb("config", "\n".join("    " + line for line in document.splitlines())
                   ).SerializeToString()


def image(tag: str, pixels: np.ndarray) -> bytes:
    """An image summary of uint8 RGB `pixels [height, width, 3]`."""
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="png")
    return _image_summary(tag, png.getvalue(), width=pixels.shape[1], height=pixels.shape[0])


def png_image(tag: str, png: bytes) -> bytes:
    """An image summary of an encoded PNG (e.g. a matplotlib figure)."""
    width, height = Image.open(io.BytesIO(png)).size
    return _image_summary(tag, png, width, height)


def _image_summary(tag: str, png: bytes, width: int, height: int) -> bytes:
    return tf.Summary(value=[tf.Summary.Value(tag=tag, image=tf.Summary.Image(
        height=height, width=width, encoded_image_string=png))]).SerializeToString()


def reading_summaries(explanations: Sequence[Explanation], lstm_names: Sequence[str],
                      weights: Dict[str, np.ndarray]) -> List[bytes]:
    """One epoch's pictures and histograms: how the model reads the handful of `explanations`,
    the distribution of each LSTM's gate values over their valid steps, and of every weight.

    Args:
      explanations: the Tracer's Explanations of the fixed validation digits.
      lstm_names: a tag for each LSTM, in the order of `Explanation.lstms` (`layer_0/fw`, ...).
      weights: `{variable name: value}` of the model's variables.
    """
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb
    summaries = [image(READING_TAG, reading_picture(explanations))]
    for index, name in enumerate(lstm_names):
        traced = [list(explanation.lstms.values())[index] for explanation in explanations]
        for gate in GATES:
            values = np.concatenate([lstm[gate].ravel() for lstm in traced])
            summaries.append(histogram_pb(f"gates/{name}/{gate}", values).SerializeToString())
    for name, value in weights.items():
        summaries.append(histogram_pb(f"weights/{name}", value).SerializeToString())
    return summaries


def record_session(log_folder: str):
    """Writes the HParams session of a finished run that has none (trained before runs recorded
    one), from its own config.json, metrics.csv, results.json and validation events: nothing is
    measured again.

    Raises:
      UserError: the folder is no finished run of this project, or already has its session.
    """
    folders = RunFolders(log_folder, log_folder)
    config = load_config(folders.log_config)
    try:
        results = read_json(folders.results)
        history = read_csv(folders.metrics)
        first, last = (datetime.fromisoformat(history[k]["timestamp"]).timestamp()
                       for k in (0, -1))
        started = first - float(history[0]["elapsed_s"])
        validation = folders.events("validation")
        step = max(event.step for name in os.listdir(validation)
                   for event in tf.train.summary_iterator(os.path.join(validation, name)))
    except (OSError, ValueError, KeyError, IndexError, tf.errors.OpError) as error:
        raise UserError(f"{log_folder}: not a finished run of this project (its {RESULTS_FILE}, "
                        f"{METRICS_FILE} and validation events are needed: {error})") from None
    if any(re.fullmatch(pattern, name) for name in os.listdir(log_folder)
           for pattern in EVENT_FILES):
        raise UserError(f"{log_folder}: has TensorBoard events of its own already, with its "
                        "session; nothing written")
    with RunLock([log_folder], os.path.basename(os.path.normpath(log_folder))):
        writer = tf.summary.FileWriter(log_folder)
        for summary in session_start(config, started) + [config_text(config)]:
            writer.add_summary(summary, 0)
        writer.add_summary(scalars({**best_results(results), **test_results(results)}), step)
        writer.add_summary(session_end(last), step)
        writer.close()
