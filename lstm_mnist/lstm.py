"""A hand-written LSTM: plain `tf.Variable` matmuls stepped through time by one `tf.while_loop`.

The cell (Hochreiter & Schmidhuber 1997, with a forget gate as in Gers et al. 2000) at step t:

    i, f, o = sigmoid(x_t W_x + h_{t-1} W_h + b)[gate blocks 0..2]
    g       = tanh(x_t W_x + h_{t-1} W_h + b)[gate block 3]
    c_t     = f * c_{t-1} + i * g
    h_t     = o * tanh(c_t)

The four gates share ONE fused matrix per connection (`w_x [input, 4*hidden]`, `w_h [hidden,
4*hidden]`) so each step is one matmul; the columns are in the order input | forget | output |
candidate.

Speed comes from doing as little as possible inside the loop. Layer 0's input projection
`x W_x + b` for every step is one big matmul *before* the loop; only `h W_h` runs per step. All layers
of a stack (and both directions of a bidirectional layer) advance in the same loop, so the dataflow
executor can run layer k at step t while layer k-1 already works on step t+1.

Sequences in a batch may differ in length. Steps past an example's end are computed but never read:
its last valid output is gathered at `lengths - 1`, and the backward direction reverses only the
valid part of each sequence (`tf.reverse_sequence`), so padding never reaches a result.
"""

from typing import List, NamedTuple, Sequence, Tuple

import tensorflow.compat.v1 as tf

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


class StackOutput(NamedTuple):
    """What `LSTMStack.__call__` returns.

    Attributes:
      outputs: `[time, batch, output_size]` the top layer's output at every step (for a bidirectional
        stack, forward and backward outputs of the same step concatenated). Steps past an example's
        length hold values computed from padding: read them only through `lengths`.
      last_output: `[batch, output_size]` each example's output at its last valid step; for a
        bidirectional stack, the forward output at step `lengths - 1` concatenated with the backward
        output at step 0 (the backward LSTM's state after reading the whole valid sequence).
      final_states: `final_states[layer][direction]` is the LSTMState after the batch's last step
        (for examples as long as the batch, the state after the whole sequence).
    """

    outputs: tf.Tensor
    last_output: tf.Tensor
    final_states: Tuple[Tuple[LSTMState, ...], ...]


def create_lstm_weights(input_size: int, hidden_size: int, name: str) -> LSTMWeights:
    """Creates the variables of one LSTM under scope `name` (`name/w_x`, `name/w_h`, `name/b`).

    Weights must exist before the time loop is built: variables created inside a `tf.while_loop`
    body fail ("initializer is from inside a control-flow construct").
    """
    with tf.variable_scope(name):
        w_x = tf.get_variable("w_x", [input_size, NUM_GATES * hidden_size],
                              initializer=tf.glorot_uniform_initializer())
        w_h = tf.get_variable("w_h", [hidden_size, NUM_GATES * hidden_size],
                              initializer=tf.orthogonal_initializer())
        # Forget bias 1 (Jozefowicz et al. 2015): the cell keeps its memory at the start of training
        # instead of halving it at every step, so gradients reach the early rows.
        bias = [0.0] * hidden_size + [FORGET_BIAS] * hidden_size + [0.0] * (2 * hidden_size)
        b = tf.get_variable("b", initializer=tf.constant(bias, dtype=tf.float32))
    return LSTMWeights(w_x, w_h, b)


def project_inputs(weights: LSTMWeights, inputs: tf.Tensor) -> tf.Tensor:
    """`inputs W_x + b` for all steps at once: `[time, batch, input]` -> `[time, batch, 4*hidden]`."""
    time_steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
    flat = tf.reshape(inputs, [-1, int(inputs.shape[-1])])
    projected = tf.matmul(flat, weights.w_x) + weights.b
    return tf.reshape(projected, [time_steps, batch, NUM_GATES * weights.hidden_size])


def lstm_step(weights: LSTMWeights, projected_input: tf.Tensor, state: LSTMState) -> LSTMState:
    """One LSTM step.

    Args:
      weights: the layer's variables.
      projected_input: `[batch, 4*hidden]`, this step's `x_t W_x + b`.
      state: the previous step's LSTMState.

    Returns:
      The new LSTMState; its `h` is the step's output.
    """
    gates = projected_input + tf.matmul(state.h, weights.w_h)
    # Four equal splits, not slices: a slice's gradient pads to the full width (measured 1.4x slower
    # per training step than split, whose gradient is one concat).
    input_gate, forget_gate, output_gate, candidate = tf.split(gates, NUM_GATES, axis=1)
    c = tf.sigmoid(forget_gate) * state.c + tf.sigmoid(input_gate) * tf.tanh(candidate)
    return LSTMState(h=tf.sigmoid(output_gate) * tf.tanh(c), c=c)


def last_valid(outputs: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Each example's output at its last valid step.

    Args:
      outputs: `[time, batch, size]`.
      lengths: int32 `[batch]`, each in 1..time.

    Returns:
      `[batch, size]`: `outputs[lengths[b] - 1, b]` for every example b.
    """
    batch_index = tf.range(tf.shape(lengths)[0], dtype=lengths.dtype)
    return tf.gather_nd(outputs, tf.stack([lengths - 1, batch_index], axis=1))


def dropout(inputs: tf.Tensor, rate) -> tf.Tensor:
    """Dropout with drop probability `rate` (a float, or a scalar tensor that is 0 at evaluation)."""
    if isinstance(rate, float) and rate == 0.0:
        return inputs
    return tf.nn.dropout(inputs, rate=rate)


def run_chains(chains: Sequence[Tuple[tf.Tensor, Sequence[LSTMWeights]]], dropout_rate=0.0,
               parallel_iterations: int = 32) -> List[Tuple[tf.Tensor, Tuple[LSTMState, ...]]]:
    """Steps several independent LSTM stacks ("chains") through time in one `tf.while_loop`.

    In a chain, the first LSTM reads precomputed input projections and LSTM k reads LSTM k-1's output
    of the same step (after dropout, a non-recurrent connection). Independent chains, such as the two
    directions of a bidirectional layer, share the loop so their steps run side by side.

    Args:
      chains: `(projected_inputs [time, batch, 4*hidden_0], [weights_0, weights_1, ...])` per chain;
        all chains have the same time and batch size.
      dropout_rate: drop probability between the LSTMs of a chain (float or scalar tensor).
      parallel_iterations: how many loop iterations TensorFlow may run concurrently.

    Returns:
      Per chain, `(outputs [time, batch, hidden_last], final_states)` where `final_states[k]` is LSTM
      k's state after the last step.
    """
    time_steps = tf.shape(chains[0][0])[0]
    batch = tf.shape(chains[0][0])[1]
    input_arrays = [tf.TensorArray(tf.float32, size=time_steps).unstack(projected)
                    for projected, _ in chains]
    output_arrays = [tf.TensorArray(tf.float32, size=time_steps) for _ in chains]
    initial_states = [tuple(LSTMState(tf.zeros([batch, w.hidden_size]), tf.zeros([batch, w.hidden_size]))
                            for w in layers)
                      for _, layers in chains]

    def body(step, states, outputs):
        new_states, new_outputs = [], []
        for (_, layers), inputs_ta, chain_states, outputs_ta in zip(chains, input_arrays, states,
                                                                    outputs):
            projected = inputs_ta.read(step)
            chain_new = []
            for index, (weights, state) in enumerate(zip(layers, chain_states)):
                if index > 0:
                    below = dropout(chain_new[-1].h, dropout_rate)
                    projected = tf.matmul(below, weights.w_x) + weights.b
                chain_new.append(lstm_step(weights, projected, state))
            new_states.append(tuple(chain_new))
            new_outputs.append(outputs_ta.write(step, chain_new[-1].h))
        return step + 1, new_states, new_outputs

    _, final_states, outputs = tf.while_loop(
        lambda step, *_: step < time_steps, body, (0, initial_states, output_arrays),
        parallel_iterations=parallel_iterations)
    return [(outputs_ta.stack(), tuple(LSTMState(*s) for s in states))
            for outputs_ta, states in zip(outputs, final_states)]


class LSTMStack:
    """A deep, optionally bidirectional LSTM; its variables are created once, on construction.

    Variables are named `<name>/layer_<k>/<fw|bw>/{w_x,w_h,b}`: these names are the checkpoint
    format.
    """

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], bidirectional: bool = False,
                 name: str = "lstm"):
        """Args:
          input_size: features per step of the input sequence (28 pixels here).
          hidden_sizes: units of each layer, bottom first.
          bidirectional: add a backward LSTM to every layer; layer k+1 then reads both directions'
            outputs concatenated.
          name: variable scope.
        """
        self.bidirectional = bidirectional
        directions = DIRECTIONS if bidirectional else DIRECTIONS[:1]
        self.layers: List[Tuple[LSTMWeights, ...]] = []
        size = input_size
        with tf.variable_scope(name):
            for index, hidden in enumerate(hidden_sizes):
                self.layers.append(tuple(create_lstm_weights(size, hidden, f"layer_{index}/{d}")
                                         for d in directions))
                size = hidden * len(directions)
        self.output_size = size

    def __call__(self, inputs: tf.Tensor, lengths: tf.Tensor, dropout_rate=0.0) -> StackOutput:
        """Builds the time loop(s).

        Args:
          inputs: float32 `[time, batch, input_size]`, time-major, zero or anything past each length.
          lengths: int32 `[batch]`, valid steps per example, each in 1..time.
          dropout_rate: drop probability on the input of every layer (Zaremba et al. 2014: never on
            the recurrent connection); a float, or a scalar tensor fed 0 at evaluation.

        Returns:
          A StackOutput.
        """
        inputs = dropout(inputs, dropout_rate)
        if not self.bidirectional:
            # One chain holding every layer: all layers advance in one loop.
            [(outputs, states)] = run_chains(
                [(project_inputs(self.layers[0][0], inputs), [fw for (fw,) in self.layers])],
                dropout_rate)
            return StackOutput(outputs, last_valid(outputs, lengths), tuple((s,) for s in states))

        # A backward layer needs the whole output sequence of the layer below, so layers run one
        # after the other, each advancing its two directions in one loop.
        final_states = []
        for index, (forward, backward) in enumerate(self.layers):
            if index > 0:
                inputs = dropout(outputs, dropout_rate)
            reversed_inputs = reverse_valid(inputs, lengths)
            (fw_outputs, fw_state), (bw_outputs, bw_state) = run_chains(
                [(project_inputs(forward, inputs), [forward]),
                 (project_inputs(backward, reversed_inputs), [backward])])
            # bw_outputs[t] has read steps len-1 .. len-1-t: its output at lengths - 1 has read all.
            last_output = tf.concat([last_valid(fw_outputs, lengths),
                                     last_valid(bw_outputs, lengths)], axis=1)
            outputs = tf.concat([fw_outputs, reverse_valid(bw_outputs, lengths)], axis=2)
            final_states.append(fw_state + bw_state)
        return StackOutput(outputs, last_output, tuple(final_states))


def reverse_valid(sequences: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Reverses the first `lengths[b]` steps of each time-major sequence; padding stays in place."""
    return tf.reverse_sequence(sequences, lengths, seq_axis=0, batch_axis=1)
