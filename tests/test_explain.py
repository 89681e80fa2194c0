"""Explaining a trained model step by step: the values are the model's own, the pictures and the
script's answers are there."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error, numpy_lstm, run_script
from lstm_mnist.checkpoints import resolve_checkpoint, saver
from lstm_mnist.config import load_config, save_config, tiny_config
from lstm_mnist.explain import (Input, check_picture_paths, file_inputs, settled_at_step,
                                split_inputs)
from lstm_mnist.report import worst_errors
from lstm_mnist.sequences import draw_crops, to_sequences

CROP_SEED = 3


def _random_checkpoint(folder, config):
    """A checkpoint folder of `config`'s model with every weight drawn at random (not the
    initialiser's zeros and ones, so every bias and gate block matters)."""
    from lstm_mnist.model import Model
    from lstm_mnist.tf1 import tf
    rng = np.random.default_rng(1)
    with tf.Graph().as_default():
        model = Model(config)
        with tf.Session() as session:
            session.run([v.assign(rng.normal(0.0, 0.5, v.shape.as_list()).astype(np.float32))
                         for v in model.model_variables])
            os.makedirs(folder / "best")
            saver(model.model_variables).save(session, str(folder / "best" / "model"))
    save_config(str(folder / "config.json"), config)
    return str(folder)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two-layer tiny crop models with random weights: `{"unidirectional": ..., "bidirectional":
    ...}` checkpoint folders."""
    folder = tmp_path_factory.mktemp("explain")
    return {name: _random_checkpoint(folder / name,
                                     tiny_config(layers=2, crop=True, bidirectional=bidirectional))
            for name, bidirectional in (("unidirectional", False), ("bidirectional", True))}


@pytest.fixture(scope="module")
def inputs(mnist):
    """Three test images read through crops of different lengths, and one full image."""
    config = tiny_config(crop=True)
    cropped = split_inputs(mnist.test, [0, 1, 2], config, CROP_SEED)
    lengths = {len(to_sequences(item.image[None], item.crop)[0]) for item in cropped}
    assert len(lengths) > 1, "the crops should give sequences of different lengths"
    return cropped + split_inputs(mnist.test, [3], config)


def _explain(checkpoint, inputs):
    from lstm_mnist.predict import Classifier
    with Classifier(checkpoint, trace=True) as classifier:
        return classifier.explain(inputs)


def _model_probabilities(checkpoint, sequences, lengths):
    """The Model's own prediction, in a graph without the trace."""
    from lstm_mnist.checkpoints import restore
    from lstm_mnist.model import Model
    from lstm_mnist.tf1 import tf
    prefix, config_path = resolve_checkpoint(checkpoint)
    with tf.Graph().as_default():
        model = Model(load_config(config_path))
        with tf.Session() as session:
            restore(session, prefix, model.model_variables)
            return session.run(model.probabilities,
                               {model.inputs: sequences, model.lengths: lengths})


def _padded(explanations):
    steps = max(len(e.sequence) for e in explanations)
    sequences = np.stack([np.pad(e.sequence, ((0, steps - len(e.sequence)), (0, 0)))
                          for e in explanations], axis=1)
    return sequences, np.array([len(e.sequence) for e in explanations], np.int32)


@pytest.mark.parametrize("kind", ["unidirectional", "bidirectional"])
def test_final_probabilities_are_the_models_prediction_for_full_and_cropped_inputs(
        checkpoints, inputs, kind):
    explanations = _explain(checkpoints[kind], inputs)
    for item, explanation in zip(inputs, explanations):
        expected = to_sequences(item.image[None], item.crop)[0][:, 0]
        np.testing.assert_array_equal(explanation.sequence, expected)
    expected = _model_probabilities(checkpoints[kind], *_padded(explanations))
    for explanation, probabilities in zip(explanations, expected):
        np.testing.assert_allclose(explanation.probabilities, probabilities, atol=1e-6)
        if kind == "unidirectional":
            np.testing.assert_allclose(explanation.step_probabilities[-1], probabilities,
                                       atol=1e-5)
        else:
            assert explanation.step_probabilities is None and explanation.settled_at_step is None
    assert len({len(e.sequence) for e in explanations}) > 1


def test_each_steps_probabilities_are_the_prediction_for_the_sequence_cut_there(checkpoints,
                                                                                inputs):
    [explanation] = _explain(checkpoints["unidirectional"], inputs[:1])
    steps = len(explanation.sequence)
    sequences = np.repeat(explanation.sequence[:, None], steps, axis=1)
    cut = _model_probabilities(checkpoints["unidirectional"], sequences,
                               np.arange(1, steps + 1, dtype=np.int32))
    np.testing.assert_allclose(explanation.step_probabilities, cut, atol=1e-5)


def _numpy_head(stored, features):
    hidden = np.maximum(features @ stored["head/hidden/w"] + stored["head/hidden/b"], 0.0)
    logits = hidden @ stored["head/logits/w"] + stored["head/logits/b"]
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("kind", ["unidirectional", "bidirectional"])
def test_gates_cells_and_step_probabilities_equal_a_numpy_recomputation(checkpoints, inputs,
                                                                        kind):
    from lstm_mnist.tf1 import tf
    prefix, _ = resolve_checkpoint(checkpoints[kind])
    reader = tf.train.load_checkpoint(prefix)
    stored = {name: reader.get_tensor(name).astype(np.float64)
              for name, _ in tf.train.list_variables(prefix)}
    directions = ("fw", "bw") if kind == "bidirectional" else ("fw",)
    for explanation in _explain(checkpoints[kind], inputs):
        below = explanation.sequence.astype(np.float64)
        traced = list(explanation.lstms.values())
        assert len(traced) == 2 * len(directions)
        for layer in range(2):
            outputs = []
            for direction in directions:
                weights = [stored[f"lstm/layer_{layer}/{direction}/{name}"]
                           for name in ("w_x", "w_h", "b")]
                if direction == "fw":
                    expected = numpy_lstm(below[:, None], *weights)
                else:  # read from the last step; kept in time order
                    expected = {field: value[::-1]
                                for field, value in numpy_lstm(below[::-1, None], *weights).items()}
                expected = {field: value[:, 0] for field, value in expected.items()}
                actual = traced.pop(0)
                for field, value in expected.items():
                    np.testing.assert_allclose(actual[field], value, atol=2e-5, err_msg=field)
                outputs.append(expected["output"])
            below = np.concatenate(outputs, axis=1)
        if kind == "unidirectional":
            np.testing.assert_allclose(explanation.step_probabilities,
                                       _numpy_head(stored, below), atol=1e-5)
        else:
            hidden = below.shape[1] // 2
            final = np.concatenate([below[-1, :hidden], below[0, hidden:]])
            np.testing.assert_allclose(explanation.probabilities, _numpy_head(stored, final),
                                       atol=1e-5)


@pytest.mark.parametrize("predicted, digit, settled", [
    ([3, 3, 3], 3, 1), ([1, 3, 3], 3, 2), ([3, 1, 3], 3, 3), ([1, 2, 3, 3, 3], 3, 3)])
def test_settled_at_step_is_where_the_final_digit_becomes_and_stays_the_most_probable(
        predicted, digit, settled):
    step_probabilities = np.eye(10)[predicted] * 0.5 + 0.05
    assert settled_at_step(step_probabilities, digit) == settled


def test_split_inputs_crop_example_k_with_eval_crop_k_and_refuse_a_bad_index(mnist):
    config = tiny_config(crop=True)
    [item] = split_inputs(mnist.test, [7], config, CROP_SEED)
    crops = draw_crops(np.random.default_rng(CROP_SEED), len(mnist.test), config.crop_min,
                       config.crop_max)
    assert item.crop == crops.take(np.array([7]))
    assert (item.source, item.name, item.label) == (
        "test[7], crop 7 of seed 3", "test-7-crop-seed-3", int(mnist.test.labels[7]))
    with pytest.raises(Exception, match="test image 10000 does not exist: the test set has "
                                        "10000 images, 0 to 9999"):
        split_inputs(mnist.test, [10000], config)


def test_a_picture_never_replaces_an_input_image_or_another_picture(tmp_path, mnist):
    digit = Image.fromarray(np.round(255 * mnist.test.images[0]).astype(np.uint8))
    image = tmp_path / "a.explain.png"
    digit.save(image)
    [item] = file_inputs([str(image)], tiny_config())
    assert item.name == "a.explain"
    check_picture_paths(str(tmp_path / "out"), [item], protected=[str(image)])
    with pytest.raises(Exception, match="replace the input"):
        check_picture_paths(str(tmp_path), [Input("x", "a", item.image)], protected=[str(image)])
    with pytest.raises(Exception, match="would be written twice"):
        check_picture_paths(str(tmp_path / "out"), [item, item])


@pytest.mark.slow
def test_script_json_explains_test_images_and_files_and_reports_bad_files(checkpoints, mnist,
                                                                          tmp_path):
    good = tmp_path / "digit.png"
    Image.fromarray(np.round(255 * mnist.test.images[5]).astype(np.uint8)).save(good)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    output = tmp_path / "pictures"
    result = run_script("explain.py", "--checkpoint", checkpoints["unidirectional"], "--json",
                        "--test-index", "4", str(good), str(bad), "--crop-seed", "3",
                        "--output", str(output))
    assert result.returncode == 1 and result.stderr == "", result.stderr
    test_image, file_image, error = [json.loads(line) for line in result.stdout.splitlines()]
    assert error == {"file": str(bad),
                     "error": "cannot read image (not an image format Pillow knows)"}
    assert test_image["source"] == "test[4], crop 4 of seed 3"
    assert test_image["label"] == int(mnist.test.labels[4])
    assert file_image["source"] == f"{good}, crop 0 of seed 3" and "label" not in file_image
    assert sorted(os.listdir(output)) == ["digit-crop-seed-3.explain.png",
                                          "test-4-crop-seed-3.explain.png"]
    for answer in (test_image, file_image):
        assert answer["digit"] == int(np.argmax(answer["probabilities"]))
        steps = [step["probabilities"] for step in answer["steps"]]
        assert [step["step"] for step in answer["steps"]] == list(range(1, len(steps) + 1))
        assert 21 <= len(steps) <= 28  # crops of 24..28 pixels a side
        np.testing.assert_allclose(steps[-1], answer["probabilities"], atol=1e-5)
        assert answer["settled_at_step"] == settled_at_step(np.array(steps), answer["digit"])
        with Image.open(answer["image"]) as picture:
            assert picture.format == "PNG" and picture.width == 1600


@pytest.mark.slow
def test_script_explains_a_bidirectional_model_in_one_line(checkpoints, tmp_path):
    result = run_script("explain.py", "--checkpoint", checkpoints["bidirectional"],
                        "--test-index", "0", "--output", str(tmp_path))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    picture = tmp_path / "test-0.explain.png"
    assert result.stdout.startswith("test[0]: digit ")
    assert result.stdout.endswith(f"read in 28 steps (bidirectional: no per-step answer); "
                                  f"picture {picture}\n")
    assert picture.stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("arguments, fragment", [
    (["--checkpoint", "{missing}", "--test-index", "0"], "no such checkpoint or folder"),
    (["--checkpoint", "{unidirectional}", "--test-index", "10000"],
     "test image 10000 does not exist"),
    (["--checkpoint", "{unidirectional}", "--crop-seed", "-1", "--test-index", "0"],
     "crop_seed"),
    (["--checkpoint", "{unidirectional}"], "nothing to explain"),
])
def test_script_rejects_bad_input_in_one_line(checkpoints, tmp_path, arguments, fragment):
    names = dict(checkpoints, missing=str(tmp_path / "nowhere"))
    result = run_script("explain.py", *[a.format(**names) for a in arguments],
                        "--output", str(tmp_path / "out"))
    assert_one_line_error(result, "explain.py: error: ", fragment)
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_evaluation_report_explains_the_most_confident_mistakes(checkpoints, mnist, tmp_path):
    from lstm_mnist.evaluate import evaluate_checkpoint
    from lstm_mnist.predict import Classifier
    evaluate_checkpoint(checkpoints["unidirectional"], report_dir=str(tmp_path))
    with Classifier(checkpoints["unidirectional"]) as classifier:
        probabilities = classifier.probabilities(mnist.test.images)
    expected = {f"test-{index}.explain.png"
                for index in worst_errors(mnist.test.labels, probabilities, 3)}
    assert len(expected) == 3
    assert {name for name in os.listdir(tmp_path) if name.endswith(".explain.png")} == expected
