"""The LSTM cell: its variables, one step forward, one step backward, and dropout.

The cell (Hochreiter & Schmidhuber 1997, with a forget gate as in Gers et al. 2000) at step t:

    i, f, o = sigmoid(x_t W_x + h_{t-1} W_h + b)[gate blocks 0..2]
    g       = tanh(x_t W_x + h_{t-1} W_h + b)[gate block 3]
    c_t     = f * c_{t-1} + i * g
    h_t     = o * tanh(c_t)

The four gates share ONE fused matrix per connection (`w_x [input, 4*hidden]`, `w_h [hidden,
4*hidden]`), so a step is one matrix product per connection; the columns are in the order input |
forget | output | candidate. Both LSTM implementations (`textbook.py`, `packed_loops.py`) are
built from this file's pieces and read the same variables, so one checkpoint serves both.
"""

from typing import NamedTuple, Optional, Tuple

from lstm_mnist.tf1 import tf

NUM_GATES = 4  # input, forget, output, candidate: the column blocks of w_x, w_h and b
FORGET_BIAS = 1.0
DIRECTIONS = ("fw", "bw")


class LSTMWeights(NamedTuple):
    """The variables of one LSTM (one layer, one direction).

    Attributes:
      w_x: `[input_size, 4 * hidden]` input-to-gates matrix.
      w_h: `[hidden, 4 * hidden]` recurrent matrix.
      b: `[4 * hidden]` gate bias; the forget block starts at FORGET_BIAS.
    """

    w_x: tf.Variable
    w_h: tf.Variable
    b: tf.Variable

    @property
    def hidden_size(self) -> int:
        return int(self.w_h.shape[0])


class LSTMState(NamedTuple):
    h: tf.Tensor  # `[batch, hidden]` output
    c: tf.Tensor  # `[batch, hidden]` cell


class GateActivations(NamedTuple):
    """What one step keeps for its backward pass, each `[batch, hidden]`: the gates after their
    nonlinearities and tanh of the new cell."""

    input_gate: tf.Tensor
    forget_gate: tf.Tensor
    output_gate: tf.Tensor
    candidate: tf.Tensor
    tanh_cell: tf.Tensor


class StackOutput(NamedTuple):
    """What a stack of LSTM layers returns, whichever implementation runs it.

    Attributes:
      outputs: `[steps, batch, output_size]` the top layer's output at every step, `steps` being
        the longest length (for a bidirectional stack, forward and backward outputs of the same
        step concatenated); zero past each example's length.
      last_output: `[batch, output_size]` each example's output at its last valid step; for a
        bidirectional stack, the forward output at step `lengths - 1` concatenated with the backward
        output at step 0 (the backward LSTM's state after reading the whole valid sequence).
      final_states: `final_states[layer][direction]` is the LSTMState of each example after its
        whole valid sequence.
    """

    outputs: tf.Tensor
    last_output: tf.Tensor
    final_states: Tuple[Tuple[LSTMState, ...], ...]


def create_lstm_weights(input_size: int, hidden_size: int, name: str) -> LSTMWeights:
    """Creates the variables of one LSTM under scope `name` (`name/w_x`, `name/w_h`, `name/b`).

    Weights must exist before a time loop is built: variables created inside a `tf.while_loop`
    body fail ("initializer is from inside a control-flow construct").
    """
    with tf.variable_scope(name):
        w_x = tf.get_variable("w_x", [input_size, NUM_GATES * hidden_size],
                              initializer=tf.glorot_uniform_initializer())
        w_h = tf.get_variable("w_h", [hidden_size, NUM_GATES * hidden_size],
                              initializer=tf.orthogonal_initializer())
        # Forget bias 1 (Jozefowicz et al. 2015): a forget gate starting at sigmoid(0) = 0.5
        # would halve the cell at every step, so nothing learnt about the first rows would survive
        # to the last; at sigmoid(1) the cell keeps its memory and gradients reach the early rows.
        bias = [0.0] * hidden_size + [FORGET_BIAS] * hidden_size + [0.0] * (2 * hidden_size)
        b = tf.get_variable("b", initializer=tf.constant(bias, dtype=tf.float32))
    return LSTMWeights(w_x, w_h, b)


def project_inputs(inputs: tf.Tensor, w_x: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """`inputs W_x + b`: `[rows, input]` -> `[rows, 4*hidden]`. It does not depend on the previous
    step, so a loop can do it for all steps at once before it starts."""
    # bias_add, not `+`: its gradient is one BiasAddGrad instead of a broadcasting Sum.
    return tf.nn.bias_add(tf.matmul(inputs, w_x), b)


def gate_activations(gates: tf.Tensor) -> GateActivations:
    """The gates' nonlinearities: `[batch, 4*hidden]` pre-activations -> a GateActivations without
    its `tanh_cell` (None), which needs the new cell."""
    input_gate, forget_gate, output_gate, candidate = tf.split(gates, NUM_GATES, axis=1)
    return GateActivations(tf.sigmoid(input_gate), tf.sigmoid(forget_gate),
                           tf.sigmoid(output_gate), tf.tanh(candidate), None)


def lstm_step(w_h: tf.Tensor, projected_input: tf.Tensor,
              state: LSTMState) -> Tuple[LSTMState, GateActivations]:
    """One LSTM step: the cell equations above.

    Args:
      w_h: `[hidden, 4*hidden]` the recurrent matrix.
      projected_input: `[batch, 4*hidden]`, this step's `x_t W_x + b` (`project_inputs`).
      state: the previous step's LSTMState (zeros before the first step).

    Returns:
      The new LSTMState (its `h` is the step's output) and the GateActivations its backward pass
      needs.
    """
    activations = gate_activations(projected_input + tf.matmul(state.h, w_h))
    c = activations.forget_gate * state.c + activations.input_gate * activations.candidate
    tanh_cell = tf.tanh(c)
    return (LSTMState(h=activations.output_gate * tanh_cell, c=c),
            activations._replace(tanh_cell=tanh_cell))


def lstm_step_backward(activations: GateActivations, previous_c: tf.Tensor, d_h: tf.Tensor,
                       d_c: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """The gradient of one `lstm_step`: the chain rule through the cell equations, by hand.

    Every other gradient of the step is a product with the returned `d_gates`: of the previous
    output `d_gates W_h^T`, of the input `d_gates W_x^T`, of the weights `h_{t-1}^T d_gates`,
    `x_t^T d_gates` and of the bias the sum of `d_gates` over the batch.

    Args:
      activations: what the forward step saved.
      previous_c: `[batch, hidden]` the cell the step started from.
      d_h: `[batch, hidden]` dLoss/dh_t, from the layer above (or the loss) plus from step t+1.
      d_c: `[batch, hidden]` dLoss/dc_t from step t+1.

    Returns:
      `d_gates [batch, 4*hidden]`, dLoss w.r.t. the step's pre-activation gates, and
      `[batch, hidden]` dLoss/dc_{t-1}.
    """
    i, f, o, g, tanh_cell = activations
    # h = o * tanh(c), and c also flows on to step t+1 directly. TanhGrad(y, dy) = dy * (1 - y^2)
    # and SigmoidGrad(y, dy) = dy * y * (1 - y), each one op, from the saved activations y.
    d_c = d_c + tf.raw_ops.TanhGrad(y=tanh_cell, dy=d_h * o)
    d_gates = tf.concat([tf.raw_ops.SigmoidGrad(y=i, dy=d_c * g),
                         tf.raw_ops.SigmoidGrad(y=f, dy=d_c * previous_c),
                         tf.raw_ops.SigmoidGrad(y=o, dy=d_h * tanh_cell),
                         tf.raw_ops.TanhGrad(y=g, dy=d_c * i)], axis=1)
    return d_gates, d_c * f


def dropout_mask(shape, rate) -> Optional[tf.Tensor]:
    """A dropout mask: 0 with probability `rate`, else `1 / (1 - rate)`; None if `rate` is 0.0.

    Args:
      shape: the mask's shape (a list or an int32 tensor).
      rate: a float, or a scalar tensor that is 0 at evaluation.
    """
    if isinstance(rate, float) and rate == 0.0:
        return None
    return tf.cast(tf.random.uniform(shape) >= rate, tf.float32) / (1.0 - rate)


def dropout(inputs: tf.Tensor, rate) -> tf.Tensor:
    """Dropout with drop probability `rate` (a float, or a scalar tensor that is 0 at evaluation).

    LSTMs here drop only on their non-recurrent connections (Zaremba et al. 2014): the input of
    every layer and of the classifier, never the `h_{t-1}` a step reads, which would compound over
    the 28 steps and wipe out the memory the LSTM is for."""
    mask = dropout_mask(tf.shape(inputs), rate)
    return inputs if mask is None else inputs * mask
