"""The textbook LSTM: the cell of `cell.py` stepped through a padded batch by a `tf.while_loop`,
trained by TensorFlow's automatic differentiation of that loop. Start reading here.

An image is read as a sequence of steps of 28 pixels. Sequences of different lengths (Part 2's
crops) are padded to the longest into one time-major batch `[time, batch, 28]`, and `lengths
[batch]` says how many steps of each example are real. Over such a batch this file builds:

1. `unroll`: one LSTM over every step, from the zero state: the forward pass.
2. `last_valid`: each example's output at ITS last step, `lengths - 1`. The padded last step is
   not it: a shorter example's LSTM has gone on reading zeros there, and forgetting.
3. `run_stack`: layers on top of each other, each optionally bidirectional, with dropout on the
   connections between them: the features the classifier reads.
4. `backprop_through_time`: the gradient of `unroll`, written by hand as a second loop from the
   last step back to the first. Training lets TensorFlow derive it; the tests check that the two
   agree, and `packed_loops.py` builds its fast training on the same loop.

`packed_loops.py` computes the same numbers faster on the same variables; `lstm.py` chooses.
"""

from typing import List, NamedTuple, Sequence, Tuple

from lstm_mnist.cell import (NUM_GATES, GateActivations, LSTMState, LSTMWeights, StackOutput,
                             dropout, lstm_step, lstm_step_backward, project_inputs)
from lstm_mnist.tf1 import tf


class History(NamedTuple):
    """One LSTM's values after every step, each `[time, batch, hidden]`, time-major.

    Attributes:
      states: the LSTMState after each step (`states.h` are the outputs).
      activations: each step's GateActivations, what its backward pass needs.
    """

    states: LSTMState
    activations: GateActivations


def unroll(weights: LSTMWeights, inputs: tf.Tensor) -> History:
    """Runs one LSTM over every step of `inputs`, padding included, from the zero state.

    Args:
      weights: the LSTM's variables.
      inputs: float32 `[time, batch, input_size]`.

    Returns:
      The History of every step.
    """
    steps, batch, hidden = tf.shape(inputs)[0], tf.shape(inputs)[1], weights.hidden_size
    # `x_t W_x + b` does not depend on the previous step: one product for all steps, before the
    # loop, leaves only `h W_h` to the loop.
    projected = project_inputs(tf.reshape(inputs, [-1, int(inputs.shape[2])]), weights.w_x,
                               weights.b)
    # A TensorArray per value: each step reads or writes its own entry, and its gradient too
    # (slicing a tensor `[t]` would have a full-size gradient at every step).
    projected = tf.TensorArray(tf.float32, steps).unstack(
        tf.reshape(projected, [steps, batch, NUM_GATES * hidden]))
    record = tf.nest.map_structure(lambda _: tf.TensorArray(tf.float32, steps),
                                   History(LSTMState(0, 0), GateActivations(0, 0, 0, 0, 0)))

    def step(t, state, record):
        state, activations = lstm_step(weights.w_h, projected.read(t), state)
        record = tf.nest.map_structure(lambda array, value: array.write(t, value), record,
                                       History(state, activations))
        return t + 1, state, record

    zero = tf.zeros([batch, hidden])
    _, _, record = tf.while_loop(lambda t, *_: t < steps, step, (0, LSTMState(zero, zero), record))
    return tf.nest.map_structure(lambda array: array.stack(), record)


def last_valid(values: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """`[batch, size]`: `values[lengths[b] - 1, b]` of time-major `values [time, batch, size]`."""
    examples = tf.range(tf.shape(lengths)[0], dtype=lengths.dtype)
    return tf.gather_nd(values, tf.stack([lengths - 1, examples], axis=1))


def reverse_valid(values: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Each example's first `lengths[b]` steps reversed; the padding stays at the end, so that a
    backward LSTM starts at the example's real last step, not on padding."""
    return tf.reverse_sequence(values, lengths, seq_axis=0, batch_axis=1)


def run_layer(directions: Sequence[LSTMWeights], inputs: tf.Tensor,
              lengths: tf.Tensor) -> List[History]:
    """One layer: a forward LSTM, and for a bidirectional layer a backward one that reads each
    example's valid steps from the last to the first.

    Returns:
      Per direction, its History in time order, zero past each length: the backward LSTM's step t
      has read steps `lengths - 1` down to t, so its step 0 has read the whole sequence.
    """
    valid = tf.cast(tf.range(tf.shape(inputs)[0])[:, None] < lengths[None, :], tf.float32)
    histories = [unroll(directions[0], inputs)]
    if len(directions) == 2:
        backward = unroll(directions[1], reverse_valid(inputs, lengths))
        histories.append(tf.nest.map_structure(lambda v: reverse_valid(v, lengths), backward))
    return [tf.nest.map_structure(lambda v: v * valid[:, :, None], h) for h in histories]


def run_stack(layers: Sequence[Sequence[LSTMWeights]], inputs: tf.Tensor, lengths: tf.Tensor,
              dropout_rate=0.0) -> Tuple[StackOutput, List[List[History]]]:
    """A deep, optionally bidirectional LSTM: layer k reads layer k-1's outputs.

    Args:
      layers: per layer, the LSTMWeights of its forward (and backward) LSTM, bottom first.
      inputs: float32 `[time, batch, input_size]`, time-major; anything past each length.
      lengths: int32 `[batch]`, valid steps per example, each in 1..time.
      dropout_rate: drop probability on the input of every layer (`cell.dropout`).

    Returns:
      The StackOutput, and every layer's `run_layer` Histories.
    """
    histories = []
    for directions in layers:
        histories.append(run_layer(directions, dropout(inputs, dropout_rate), lengths))
        inputs = tf.concat([history.states.h for history in histories[-1]], axis=2)
    final_states = tuple(_final_states(layer, lengths) for layer in histories)
    last_output = tf.concat([state.h for state in final_states[-1]], axis=1)
    return StackOutput(inputs, last_output, final_states), histories


def _final_states(layer: List[History], lengths: tf.Tensor) -> Tuple[LSTMState, ...]:
    """Each LSTM's state after reading its whole valid sequence: the forward LSTM's at the last
    valid step, the backward LSTM's at step 0."""
    forward = LSTMState(*(last_valid(values, lengths) for values in layer[0].states))
    return (forward,) + tuple(LSTMState(*(values[0] for values in history.states))
                              for history in layer[1:])


def backprop_through_time(weights: LSTMWeights, inputs: tf.Tensor, history: History,
                          d_outputs: tf.Tensor) -> Tuple[tf.Tensor, LSTMWeights]:
    """The gradient of `unroll`, by hand: `cell.lstm_step_backward` from the last step to the first.

    Step t's output h_t reaches the loss directly (`d_outputs[t]`) and through step t+1, which
    read h_t and c_t: the loop carries that gradient of the state, `(d_h, d_c)`, backwards, one
    step at a time. The weights are shared by every step, so their gradient is the sum of every
    step's.

    Args:
      weights: the LSTM's variables.
      inputs: float32 `[time, batch, input_size]`, what `unroll` read.
      history: what `unroll` returned.
      d_outputs: `[time, batch, hidden]`, dLoss/dh_t of the loss through each step's output only.

    Returns:
      dLoss/d inputs `[time, batch, input_size]`, and the weights' gradients as an LSTMWeights.
    """
    steps = tf.shape(inputs)[0]
    zero = tf.zeros_like(history.states.h[:1])
    # The state each step started from: the zero state, then each step's state.
    previous = tf.nest.map_structure(lambda v: tf.concat([zero, v[:-1]], axis=0), history.states)

    def step(t, d_state, d_weights, d_inputs):
        d_gates, d_previous_c = lstm_step_backward(
            tf.nest.map_structure(lambda v: v[t], history.activations), previous.c[t],
            d_outputs[t] + d_state.h, d_state.c)
        d_weights = LSTMWeights(d_weights.w_x + tf.matmul(inputs[t], d_gates, transpose_a=True),
                                d_weights.w_h + tf.matmul(previous.h[t], d_gates, transpose_a=True),
                                d_weights.b + tf.reduce_sum(d_gates, axis=0))
        d_inputs = d_inputs.write(t, tf.matmul(d_gates, weights.w_x, transpose_b=True))
        d_previous = LSTMState(tf.matmul(d_gates, weights.w_h, transpose_b=True), d_previous_c)
        return t - 1, d_previous, d_weights, d_inputs

    _, _, d_weights, d_inputs = tf.while_loop(
        lambda t, *_: t >= 0, step,
        (steps - 1, LSTMState(zero[0], zero[0]), LSTMWeights(*map(tf.zeros_like, weights)),
         tf.TensorArray(tf.float32, steps)))
    return d_inputs.stack(), d_weights
