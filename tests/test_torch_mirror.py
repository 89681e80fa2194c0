"""The benchmark's PyTorch mirror is our classifier: same weights, same logits and gradients."""

import numpy as np
import pytest

from lstm_mnist.config import tiny_config
from lstm_mnist.model import Model
from lstm_mnist.sequences import draw_crops, to_sequences
from lstm_mnist.tf1 import tf

torch = pytest.importorskip("torch")
from benchmarks.torch_mirror import TorchClassifier, TorchTrainer, mirror_state_dict  # noqa: E402

CONFIGS = {
    "1 layer, full images": tiny_config(hidden=(16,)),
    "deep, crops": tiny_config(layers=2, hidden=(12, 12), crop=True, crop_min=8),
    "bidirectional, full images": tiny_config(hidden=(8,), bidirectional=True),
    "deep bidirectional, crops": tiny_config(layers=2, hidden=(8, 8), bidirectional=True,
                                             crop=True, crop_min=8),
}


def _batch(config, batch=7):
    rng = np.random.default_rng(5)
    images = rng.random((batch, 28, 28)).astype(np.float32)
    crops = draw_crops(rng, batch, config.crop_min, config.crop_max) if config.crop else None
    inputs, lengths = to_sequences(images, crops)
    return inputs, lengths, rng.integers(0, 10, batch)


def _ours(config, inputs, lengths, labels):
    """Our model with random biases (the forget bias of 1 kept): its variables, logits, loss,
    gradients and their global norm."""
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        model = Model(config)
        names = [v.op.name for v in model.model_variables]
        gradients = tf.gradients(model.loss, model.model_variables)
        feed = {model.inputs: inputs, model.lengths: lengths, model.labels: labels}
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            rng = np.random.default_rng(4)
            for variable in model.model_variables:
                if variable.op.name.endswith("/b"):  # every gate's bias matters, not only forget's
                    variable.load(variable.eval() + rng.normal(0, 0.5, variable.shape), session)
            values, logits, loss, grads = session.run(
                [model.model_variables, model.logits, model.loss, gradients], feed)
    grads = dict(zip(names, grads))
    return {"values": dict(zip(names, values)), "logits": logits, "loss": loss, "grads": grads,
            "grad_norm": np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))}


@pytest.mark.parametrize("name", CONFIGS)
def test_mirror_computes_our_logits_and_gradients_from_our_weights(name):
    config = CONFIGS[name]
    inputs, lengths, labels = _batch(config)
    if config.crop:
        assert lengths.min() < lengths.max() == inputs.shape[0], "the batch must mix lengths"
    ours = _ours(config, inputs, lengths, labels)
    mirror = TorchClassifier(config)
    mirror.load_state_dict(mirror_state_dict(ours["values"], config))  # strict: every parameter
    logits = mirror(torch.from_numpy(inputs), torch.from_numpy(lengths.astype(np.int64)))
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)).backward()

    np.testing.assert_allclose(logits.detach().numpy(), ours["logits"], atol=1e-5, rtol=1e-5)
    expected = mirror_state_dict(ours["grads"], config)  # our gradients in the mirror's layout
    trained = [(name, p) for name, p in mirror.named_parameters() if p.requires_grad]
    assert len(trained) == len(ours["grads"])  # bias_hh, PyTorch's second bias, stays 0
    for parameter, value in trained:
        want = expected[parameter].numpy()
        np.testing.assert_allclose(value.grad.numpy(), want, atol=1e-6, rtol=1e-4,
                                   err_msg=parameter)
        assert np.abs(want).max() > 0, parameter


@pytest.mark.slow  # builds and runs both trainers
def test_mirror_training_step_reports_our_loss_and_gradient_norm():
    config = CONFIGS["deep bidirectional, crops"].replace(clip=1e-3)
    inputs, lengths, labels = _batch(config)
    ours = _ours(config, inputs, lengths, labels)
    trainer = TorchTrainer(config, steps_per_epoch=10)
    trainer.model.load_state_dict(mirror_state_dict(ours["values"], config))
    before = [p.detach().clone() for p in trainer.parameters]
    loss, grad_norm = trainer.train_step(inputs, lengths, labels)
    assert loss == pytest.approx(ours["loss"], rel=1e-5)
    assert grad_norm == pytest.approx(ours["grad_norm"], rel=1e-4)
    assert grad_norm > config.clip  # so clipping was active, and Adam still moved every weight
    for old, new in zip(before, trainer.parameters):
        assert 0 < (new - old).abs().max() <= 1.01 * config.lr
    assert trainer.optimizer.param_groups[0]["lr"] < config.lr  # the cosine schedule stepped
