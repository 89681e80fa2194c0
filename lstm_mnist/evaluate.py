"""Measuring a model on whole splits, and rebuilding a trained model from its checkpoint folder."""

import os
from typing import Dict, Optional, Tuple

import numpy as np

from lstm_mnist.config import Config, load_config
from lstm_mnist.data import Split, load_mnist
from lstm_mnist.errors import UserError
from lstm_mnist.model import Model
from lstm_mnist.report import split_probabilities, write_report
from lstm_mnist.runs import BEST, CONFIG_FILE, LATEST
from lstm_mnist.sequences import batches, draw_crops
from lstm_mnist.tf1 import tf

EVAL_BATCH_SIZE = 1000  # evaluation has no gradients to keep, so it can take bigger batches


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or does not match its config."""


def measure(session: tf.Session, model: Model, split: Split,
            crop_seed: Optional[int] = None) -> Dict[str, float]:
    """Loss, error and accuracy over every example of `split`, with dropout off.

    In crop mode the split is measured twice: on full images (keys `loss`, `error`, `accuracy`) and
    on crops drawn from `crop_seed` (default: the config's), the same crops at every call (keys
    with the suffix `_cropped`).
    """
    config = model.config
    variants = [("", None)]
    if config.crop:
        seed = config.crop_seed if crop_seed is None else crop_seed
        crops = draw_crops(np.random.default_rng(seed), len(split), config.crop_min,
                           config.crop_max)
        variants.append(("_cropped", crops))
    results = {}
    for suffix, crops in variants:
        result = model.run(session, batches(split.images, split.labels, EVAL_BATCH_SIZE,
                                            crops=crops))
        results.update({"loss" + suffix: result.loss, "error" + suffix: result.error,
                        "accuracy" + suffix: 1.0 - result.error})
    return results


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
                prefix = tf.train.latest_checkpoint(folder)
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


def restore(session: tf.Session, prefix: str, variables) -> None:
    """Restores `variables` from `prefix` after checking that names and shapes match."""
    try:
        stored = dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{prefix}: unreadable checkpoint ({error.__class__.__name__})") \
            from None
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in stored:
            raise CheckpointError(f"{prefix}: does not match its config: variable {name} "
                                  "is not in the checkpoint")
        if list(stored[name]) != shape:
            raise CheckpointError(f"{prefix}: does not match its config: {name} has shape "
                                  f"{list(stored[name])} in the checkpoint, {shape} in the model")
    try:
        tf.train.Saver(var_list=variables).restore(session, prefix)
    except tf.errors.OpError as error:
        raise CheckpointError(f"{prefix}: cannot restore ({error.message.splitlines()[0]})") \
            from None


def evaluate_checkpoint(path: str, data_dir: Optional[str] = None,
                        crop_seed: Optional[int] = None,
                        report_dir: Optional[str] = None) -> Dict[str, object]:
    """Rebuilds the model from a checkpoint's config and measures it on validation and test.

    With `report_dir`, also writes `report.write_report` of the full test images into it.

    Returns:
      `{"checkpoint": prefix, "validation_loss": ..., "validation_error": ...,
      "validation_accuracy": ..., "test_...": ...}`, plus `*_cropped` keys for crop-mode models.
    """
    prefix, config_path = resolve_checkpoint(path)
    config: Config = load_config(config_path)
    mnist = load_mnist(data_dir)
    with tf.Graph().as_default():
        tf.set_random_seed(config.seed)
        model = Model(config)
        with tf.Session(config=session_config()) as session:
            restore(session, prefix, model.model_variables)
            results = {"checkpoint": prefix}
            for split_name in ("validation", "test"):
                measured = measure(session, model, getattr(mnist, split_name), crop_seed)
                results.update({f"{split_name}_{key}": value for key, value in measured.items()})
            if report_dir is not None:
                write_report(report_dir, mnist.test.images, mnist.test.labels,
                             split_probabilities(session, model, mnist.test, EVAL_BATCH_SIZE))
    return results


def session_config() -> tf.ConfigProto:
    """Session settings shared by training, evaluation and benchmarks.

    One thread per op, as many ops at once as there are cores: the graph is thousands of small ops
    (128 x 512 matrices), and splitting each over threads costs more in synchronisation than it
    gains (docs/performance.md: 1.19x more training examples/s for 1 x 128 than TensorFlow's
    default of splitting every op over all cores). The two directions of a bidirectional layer and
    the layers of a deep stack already keep the cores busy side by side.
    """
    return tf.ConfigProto(intra_op_parallelism_threads=1)
