"""Evaluating a trained model: rebuilt from its checkpoint folder, measured on validation and test."""

from typing import Dict, Optional

from lstm_mnist.checkpoints import load_trained, restore
from lstm_mnist.data import load_mnist
from lstm_mnist.explain import Tracer, explain_worst_errors
from lstm_mnist.files import staged_folder
from lstm_mnist.memory import check_memory
from lstm_mnist.model import Model
from lstm_mnist.passes import EVAL_BATCH_SIZE, measure
from lstm_mnist.report import split_probabilities, write_report
from lstm_mnist.runs import check_writable
from lstm_mnist.tf1 import session_config, tf


def evaluate_checkpoint(path: str, data_dir: Optional[str] = None,
                        crop_seed: Optional[int] = None,
                        report_dir: Optional[str] = None,
                        lstm: Optional[str] = None) -> Dict[str, object]:
    """Rebuilds the model from a checkpoint's config and measures it on validation and test.

    With `report_dir`, also writes `report.write_report` of the full test images into it, and
    `explain_worst_errors`: pictures of how the model read its most confident mistakes. With
    `lstm`, the model runs on that LSTM implementation instead of the one that trained it.

    Returns:
      `{"checkpoint": prefix, "validation_loss": ..., "validation_error": ...,
      "validation_accuracy": ..., "test_...": ...}`, plus `*_cropped` keys for crop-mode models.
    """
    prefix, config = load_trained(path, lstm)
    if crop_seed is not None:
        config.replace(crop_seed=crop_seed)  # validates it, as for training
    check_memory(config, EVAL_BATCH_SIZE, training=False)
    if report_dir is not None:
        check_writable(report_dir)  # before minutes of evaluation, not after
    mnist = load_mnist(data_dir)
    with tf.Graph().as_default():
        tf.set_random_seed(config.seed)
        model = Model(config)
        tracer = Tracer(model) if report_dir is not None else None
        with tf.Session(config=session_config()) as session:
            restore(session, prefix, model.model_variables)
            results = {"checkpoint": prefix}
            for split_name in ("validation", "test"):
                measured = measure(session, model, getattr(mnist, split_name), crop_seed)
                results.update({f"{split_name}_{key}": value for key, value in measured.items()})
            if report_dir is not None:
                probabilities = split_probabilities(session, model, mnist.test, EVAL_BATCH_SIZE)
                with staged_folder(report_dir) as staging:
                    write_report(staging, mnist.test.images, mnist.test.labels, probabilities)
                    explain_worst_errors(session, tracer, staging, mnist.test, probabilities)
    return results

