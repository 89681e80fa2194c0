"""A hand-written LSTM: plain `tf.Variable` matmuls stepped through time by `tf.while_loop`, with
backpropagation through time written out by hand as a second loop.

The cell (Hochreiter & Schmidhuber 1997, with a forget gate as in Gers et al. 2000) at step t:

    i, f, o = sigmoid(x_t W_x + h_{t-1} W_h + b)[gate blocks 0..2]
    g       = tanh(x_t W_x + h_{t-1} W_h + b)[gate block 3]
    c_t     = f * c_{t-1} + i * g
    h_t     = o * tanh(c_t)

The four gates share ONE fused matrix per connection (`w_x [input, 4*hidden]`, `w_h [hidden,
4*hidden]`) so each step is one matmul; the columns are in the order input | forget | output |
candidate.

Speed comes from doing as little as possible inside the loops. Layer 0's input projection
`x W_x + b` for every step is one big matmul *before* the loop; only `h W_h` runs per step. All layers
of a stack (and both directions of a bidirectional layer) advance in the same loop, so the dataflow
executor can run layer k at step t while layer k-1 already works on step t+1. The gradient is
`lstm_step_backward` run backwards through time by `run_chains`, from what the forward loop saved
(gate activations, cells, outputs): ~30% fewer ops per training step than TensorFlow's automatic
differentiation of the loop, which also pushes and pops every intermediate on stacks, and the
weight gradients are summed in the backward loop beside the sequential d_h chain.

Sequences in a batch may differ in length. They are packed (`packing.PackedLayout`): sorted by
length, only their valid steps stored, so the loops and the input projections never compute on
padding (random crops leave ~12% of a padded batch empty), and the backward direction reads each
sequence's valid part reversed.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

from lstm_mnist.packing import PackedLayout, StepSlices
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
    """What `LSTMStack.__call__` returns.

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
    """`inputs W_x + b` for all steps at once: packed `[rows, input]` -> `[rows, 4*hidden]`."""
    # bias_add, not `+`: its gradient is one BiasAddGrad instead of a broadcasting Sum (2x faster
    # on a 3584 x 512 gradient here).
    return tf.nn.bias_add(tf.matmul(inputs, weights.w_x), weights.b)


def lstm_step(weights: LSTMWeights, projected_input: tf.Tensor,
              state: LSTMState) -> Tuple[LSTMState, GateActivations]:
    """One LSTM step.

    Args:
      weights: the layer's variables.
      projected_input: `[batch, 4*hidden]`, this step's `x_t W_x + b`.
      state: the previous step's LSTMState.

    Returns:
      The new LSTMState (its `h` is the step's output) and the GateActivations its backward pass
      needs.
    """
    gates = projected_input + tf.matmul(state.h, weights.w_h)
    # Four equal splits, not slices: measured faster per step than one sigmoid over a [3h | h]
    # split.
    input_gate, forget_gate, output_gate, candidate = tf.split(gates, NUM_GATES, axis=1)
    activations = GateActivations(tf.sigmoid(input_gate), tf.sigmoid(forget_gate),
                                  tf.sigmoid(output_gate), tf.tanh(candidate), None)
    c = activations.forget_gate * state.c + activations.input_gate * activations.candidate
    tanh_cell = tf.tanh(c)
    return (LSTMState(h=activations.output_gate * tanh_cell, c=c),
            activations._replace(tanh_cell=tanh_cell))


def lstm_step_backward(w_h_transposed: tf.Tensor, activations: GateActivations,
                       previous_c: tf.Tensor, d_h: tf.Tensor,
                       d_c: tf.Tensor) -> Tuple[tf.Tensor, LSTMState]:
    """The gradient of one `lstm_step`: the chain rule through the cell equations, by hand.

    Args:
      w_h_transposed: `[4*hidden, hidden]`, `w_h` transposed once outside the loop (a product with a
        transposed operand is ~1.5x slower per step).
      activations: what the forward step saved.
      previous_c: `[batch, hidden]` the cell the step started from.
      d_h: `[batch, hidden]` dLoss/dh_t, from the layer above (or the loss) plus from step t+1.
      d_c: `[batch, hidden]` dLoss/dc_t from step t+1.

    Returns:
      `d_gates [batch, 4*hidden]` (dLoss w.r.t. the step's pre-activation gates, i.e. w.r.t. its
      projected input; the weight gradients are products with it) and the LSTMState of gradients
      w.r.t. the previous state `(d h_{t-1}, d c_{t-1})`.
    """
    i, f, o, g, tanh_cell = activations
    # h = o * tanh(c), and c also flows on to step t+1 directly. TanhGrad(y, dy) = dy * (1 - y^2)
    # and SigmoidGrad(y, dy) = dy * y * (1 - y), each one op, from the saved activations y.
    d_c = d_c + tf.raw_ops.TanhGrad(y=tanh_cell, dy=d_h * o)
    d_gates = tf.concat([tf.raw_ops.SigmoidGrad(y=i, dy=d_c * g),
                         tf.raw_ops.SigmoidGrad(y=f, dy=d_c * previous_c),
                         tf.raw_ops.SigmoidGrad(y=o, dy=d_h * tanh_cell),
                         tf.raw_ops.TanhGrad(y=g, dy=d_c * i)], axis=1)
    return d_gates, LSTMState(h=tf.matmul(d_gates, w_h_transposed), c=d_c * f)


def dropout_mask(shape, rate) -> Optional[tf.Tensor]:
    """A dropout mask: 0 with probability `rate`, else `1 / (1 - rate)`; None if `rate` is 0.0.

    Args:
      shape: the mask's shape (a list or an int32 tensor). Taking it from the placeholders, not
        from the tensor to drop, lets the random numbers be drawn while the layers below still run.
      rate: a float, or a scalar tensor that is 0 at evaluation.
    """
    if isinstance(rate, float) and rate == 0.0:
        return None
    return tf.cast(tf.random.uniform(shape) >= rate, tf.float32) / (1.0 - rate)


def dropout(inputs: tf.Tensor, rate) -> tf.Tensor:
    """Dropout with drop probability `rate` (a float, or a scalar tensor that is 0 at evaluation)."""
    mask = dropout_mask(tf.shape(inputs), rate)
    return inputs if mask is None else inputs * mask


class Chain(NamedTuple):
    """LSTMs stacked in one loop: the first reads precomputed input projections, LSTM k reads LSTM
    k-1's output of the same step times `dropout_masks[k - 1]` (a non-recurrent connection).

    Attributes:
      projected_inputs: packed `[rows, 4*hidden_0]`, `project_inputs` of the chain's input.
      layers: LSTMWeights per LSTM, bottom first.
      dropout_masks: for each LSTM k > 0, packed `[rows, hidden_{k-1}]` or None for no dropout.
    """

    projected_inputs: tf.Tensor
    layers: Sequence[LSTMWeights]
    dropout_masks: Optional[Sequence[Optional[tf.Tensor]]] = None


def run_chains(chains: Sequence[Chain], layout: PackedLayout, parallel_iterations: int = 32
               ) -> List[List[LSTMState]]:
    """Steps independent LSTM stacks ("chains") through time in one `tf.while_loop`, with a
    hand-written gradient: a second loop that runs `lstm_step_backward` from the last step to the
    first.

    Independent chains, such as the two directions of a bidirectional layer, share the loop so their
    steps run side by side. Sequences are packed (see `packing`): at step t only the `counts[t]`
    examples still running are computed.

    Args:
      chains: Chains over the same packed layout.
      layout: the PackedLayout of the batch.
      parallel_iterations: how many loop iterations TensorFlow may run concurrently.

    Returns:
      Per chain, per LSTM, an LSTMState of packed `[rows, hidden]` tensors: its output and cell at
      every valid step (`layout.last` of them is each example's final state).
    """
    # Everything that receives a gradient is an argument of the custom-gradient function, in this
    # order: per chain, its projected inputs, then per LSTM w_h, and for LSTMs above the first
    # w_x, b.
    arguments = []
    for chain in chains:
        arguments.append(chain.projected_inputs)
        for index, weights in enumerate(chain.layers):
            variables = [weights.w_h] + ([weights.w_x, weights.b] if index else [])
            arguments.extend(tf.convert_to_tensor(v) for v in variables)
    masks = [chain.dropout_masks or [None] * (len(chain.layers) - 1) for chain in chains]

    @tf.custom_gradient
    def loop(*tensors):
        tensors = iter(tensors)
        projected, chain_weights = [], []
        for chain in chains:
            projected.append(next(tensors))
            chain_weights.append([
                LSTMWeights(None, next(tensors), None) if index == 0 else
                LSTMWeights(w_h=next(tensors), w_x=next(tensors), b=next(tensors))
                for index in range(len(chain.layers))])
        slices = layout.steps()  # shared by both loops
        saved = _forward(projected, chain_weights, masks, layout, slices, parallel_iterations)
        # Step t's rows follow step t-1's in the concatenation: the packed layout. The first
        # `batch` rows are the zero initial state.
        packed = [[LSTMState(*(arrays[name].concat()[layout.batch_size:] for name in ("h", "c")))
                   for arrays in chain_saved] for chain_saved in saved]

        def gradient(*d_packed):
            return _backward(chain_weights, masks, layout, slices, saved, d_packed,
                             parallel_iterations)

        return [t for chain_packed in packed for state in chain_packed for t in state], gradient

    flat = iter(loop(*arguments))
    return [[LSTMState(next(flat), next(flat)) for _ in chain.layers] for chain in chains]


# What the forward loop saves per LSTM and step for the backward loop: the GateActivations, the
# LSTM's input x (above the first LSTM of a chain), and h and c, which hold one more entry: the
# zero initial state at index 0, so index t holds the state step t started from.
def _saved_arrays(steps: tf.Tensor, weights: LSTMWeights, input_size: Optional[int],
                  initial: tf.Tensor) -> dict:
    def array(size, width):
        # Steps have different row counts: element shapes may differ in their first dimension.
        return tf.TensorArray(tf.float32, size=size, infer_shape=False, clear_after_read=False,
                              element_shape=tf.TensorShape([None, width]))

    hidden = weights.hidden_size
    arrays = {name: array(steps, hidden) for name in GateActivations._fields}
    if input_size is not None:
        arrays["x"] = array(steps, input_size)
    arrays.update(h=array(steps + 1, hidden).write(0, initial),
                  c=array(steps + 1, hidden).write(0, initial))
    return arrays


def _zero_rows(rows: tf.Tensor, width: int) -> tf.Tensor:
    """`[rows, width]` zeros whose static shape is `[None, width]`: a loop state whose row count
    changes from step to step must not start with a fixed one (a constant batch would give it
    one), and placeholder_with_default relaxes it."""
    return tf.placeholder_with_default(tf.zeros([rows, width]), [None, width])


def _forward(projected, chain_weights, masks, layout: PackedLayout, slices: StepSlices,
             parallel_iterations):
    """The forward loop. Returns, per chain and LSTM, the dict of TensorArrays it saved."""
    steps = tf.shape(layout.counts)[0]
    zeros = [[_zero_rows(layout.batch_size, w.hidden_size) for w in layers]
             for layers in chain_weights]
    initial_states = [[LSTMState(z, z) for z in chain_zeros] for chain_zeros in zeros]
    initial_saved = [[_saved_arrays(steps, w, layers[index - 1].hidden_size if index else None, z)
                      for index, (w, z) in enumerate(zip(layers, chain_zeros))]
                     for layers, chain_zeros in zip(chain_weights, zeros)]

    def body(step, states, saved):
        rows = slices.at(step)
        new_states, new_saved = [], []
        for chain_index, layers in enumerate(chain_weights):
            chain_states, chain_saved = [], []
            step_input = rows.rows(projected[chain_index])
            for index, (weights, state, arrays) in enumerate(zip(layers, states[chain_index],
                                                                  saved[chain_index])):
                arrays = dict(arrays)
                if index > 0:
                    below = chain_states[-1].h
                    mask = masks[chain_index][index - 1]
                    if mask is not None:
                        below = below * rows.rows(mask)
                    arrays["x"] = arrays["x"].write(step, below)
                    step_input = tf.nn.bias_add(tf.matmul(below, weights.w_x), weights.b)
                # Examples that ended drop out of the state: the running ones are its first rows.
                state, activations = lstm_step(weights, step_input,
                                               LSTMState(rows.running(state.h),
                                                         rows.running(state.c)))
                for name, value in activations._asdict().items():
                    arrays[name] = arrays[name].write(step, value)
                arrays["h"] = arrays["h"].write(step + 1, state.h)
                arrays["c"] = arrays["c"].write(step + 1, state.c)
                chain_states.append(state)
                chain_saved.append(arrays)
            new_states.append(chain_states)
            new_saved.append(chain_saved)
        return step + 1, new_states, new_saved

    _, _, saved = tf.while_loop(lambda step, *_: step < steps, body,
                                (0, initial_states, initial_saved),
                                parallel_iterations=parallel_iterations)
    return saved


def _backward(chain_weights, masks, layout: PackedLayout, slices: StepSlices, saved, d_packed,
              parallel_iterations):
    """The backward loop: from the last step to the first, each chain's LSTMs top-down.

    Args:
      d_packed: the gradients of the packed h and c of every LSTM, flat in `run_chains`' order
        (None where nothing depends on them).

    Returns:
      The gradients of the custom-gradient function's arguments, in their order.
    """
    steps = tf.shape(layout.counts)[0]
    # Gradients through `layout.last` arrive as IndexedSlices: made dense once here, not at every
    # step inside the loop.
    d_packed = iter([None if d is None else tf.convert_to_tensor(d) for d in d_packed])
    d_packed = [[LSTMState(next(d_packed), next(d_packed)) for _ in layers]
                for layers in chain_weights]
    last_count = layout.counts[steps - 1]
    initial_d_states, initial_sums = [], []
    for layers in chain_weights:
        initial_d_states.append([LSTMState(*[_zero_rows(last_count, w.hidden_size)] * 2)
                                 for w in layers])
        # Weight gradients are summed over steps inside the loop, where their products can run
        # beside the sequential d_h chain instead of after the loop.
        initial_sums.append([{"w_h": tf.zeros_like(w.w_h)} if index == 0 else
                             {"w_h": tf.zeros_like(w.w_h), "w_x": tf.zeros_like(w.w_x),
                              "b": tf.zeros_like(w.b)} for index, w in enumerate(layers)])
    transposed = [[LSTMWeights(None if index == 0 else tf.transpose(w.w_x), tf.transpose(w.w_h),
                               None) for index, w in enumerate(layers)]
                  for layers in chain_weights]
    width = [NUM_GATES * layers[0].hidden_size for layers in chain_weights]
    d_projected = [tf.TensorArray(tf.float32, size=steps, infer_shape=False,
                                  element_shape=tf.TensorShape([None, w])) for w in width]

    def body(step, d_states, sums, d_projected):
        rows = slices.at(step)
        new_d_states, new_sums, new_d_projected = [], [], []
        for chain_index, layers in enumerate(chain_weights):
            chain_d, chain_sums = [None] * len(layers), [None] * len(layers)
            d_from_above = None
            for index in reversed(range(len(layers))):
                arrays = saved[chain_index][index]
                d_state = d_states[chain_index][index]
                # Examples whose last step this is start with no gradient from later steps.
                d_h, d_c = rows.grow(d_state.h), rows.grow(d_state.c)
                d_outside = d_packed[chain_index][index]
                if d_outside.h is not None:
                    d_h += rows.rows(d_outside.h)
                if d_outside.c is not None:
                    d_c += rows.rows(d_outside.c)
                if d_from_above is not None:
                    d_h += d_from_above
                activations = GateActivations(*(arrays[name].read(step)
                                                for name in GateActivations._fields))
                previous = LSTMState(rows.running(arrays["h"].read(step)),
                                     rows.running(arrays["c"].read(step)))
                d_gates, chain_d[index] = lstm_step_backward(
                    transposed[chain_index][index].w_h, activations, previous.c, d_h, d_c)
                layer_sums = dict(sums[chain_index][index])
                layer_sums["w_h"] += tf.matmul(previous.h, d_gates, transpose_a=True)
                if index > 0:
                    layer_sums["w_x"] += tf.matmul(arrays["x"].read(step), d_gates,
                                                   transpose_a=True)
                    layer_sums["b"] += tf.reduce_sum(d_gates, axis=0)
                    d_from_above = tf.matmul(d_gates, transposed[chain_index][index].w_x)
                    mask = masks[chain_index][index - 1]
                    if mask is not None:
                        d_from_above *= rows.rows(mask)
                else:
                    new_d_projected.append(d_projected[chain_index].write(step, d_gates))
                chain_sums[index] = layer_sums
            new_d_states.append(chain_d)
            new_sums.append(chain_sums)
        return step - 1, new_d_states, new_sums, new_d_projected

    _, _, sums, d_projected = tf.while_loop(
        lambda step, *_: step >= 0, body, (steps - 1, initial_d_states, initial_sums, d_projected),
        parallel_iterations=parallel_iterations)
    gradients = []
    for chain_index, layers in enumerate(chain_weights):
        gradients.append(d_projected[chain_index].concat())
        for index, layer_sums in enumerate(sums[chain_index]):
            gradients.append(layer_sums["w_h"])
            if index > 0:
                gradients.extend([layer_sums["w_x"], layer_sums["b"]])
    return gradients


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
        """Builds the time loops.

        Args:
          inputs: float32 `[time, batch, input_size]`, time-major, zero or anything past each length.
          lengths: int32 `[batch]`, valid steps per example, each in 1..time.
          dropout_rate: drop probability on the input of every layer (Zaremba et al. 2014: never on
            the recurrent connection); a float, or a scalar tensor fed 0 at evaluation.

        Returns:
          A StackOutput.
        """
        layout = PackedLayout.from_lengths(lengths)
        inputs = dropout(layout.pack(inputs), dropout_rate)
        # Every mask is drawn up front, from the packed shape, so no layer waits for its random
        # numbers.
        masks = [[dropout_mask([layout.num_rows, w.hidden_size], dropout_rate) for w in layer]
                 for layer in self.layers[:-1]]
        if not self.bidirectional:
            # One chain holding every layer: all layers advance in one loop.
            [states] = run_chains([Chain(project_inputs(self.layers[0][0], inputs),
                                         [fw for (fw,) in self.layers], [m for (m,) in masks])],
                                  layout)
            final_states = tuple((LSTMState(layout.last(s.h), layout.last(s.c)),) for s in states)
            return StackOutput(layout.unpack(states[-1].h), final_states[-1][0].h, final_states)

        # A backward layer needs the whole output sequence of the layer below, so layers run one
        # after the other, each advancing its two directions in one loop. The backward LSTM's
        # outputs stay in its reading order (`backward[t]` has read steps len-1 .. len-1-t) until
        # the layer above needs them in time order.
        final_states = []
        for index, (forward, backward) in enumerate(self.layers):
            if index > 0:
                forward_mask, backward_mask = masks[index - 1]
                if forward_mask is not None:
                    forward_outputs = forward_outputs * forward_mask
                    backward_outputs = backward_outputs * backward_mask
                inputs = tf.concat([forward_outputs, layout.reverse(backward_outputs)], axis=1)
            [forward_state], [backward_state] = run_chains(
                [Chain(project_inputs(forward, inputs), [forward]),
                 Chain(project_inputs(backward, layout.reverse(inputs)), [backward])], layout)
            forward_outputs, backward_outputs = forward_state.h, backward_state.h
            final_states.append(tuple(LSTMState(layout.last(s.h), layout.last(s.c))
                                      for s in (forward_state, backward_state)))
        # The backward output at lengths - 1 has read the whole valid sequence.
        last_output = tf.concat([state.h for state in final_states[-1]], axis=1)
        outputs = tf.concat([forward_outputs, layout.reverse(backward_outputs)], axis=1)
        return StackOutput(layout.unpack(outputs), last_output, tuple(final_states))
