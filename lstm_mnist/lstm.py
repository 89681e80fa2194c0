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
(gate activations on stacks, cells and outputs in TensorArrays): ~30% fewer ops per training step
than TensorFlow's automatic differentiation of the loop, which saves every intermediate and adds
broadcasting bookkeeping. The backward loop carries only what is sequential, the d_h and d_c
chains, and records each step's gate gradients; every weight's gradient is then one product over
all steps after it (`_weight_gradients`), as fused RNN kernels do. The first step runs outside the
loops: it starts from the zero state, so it has no `h W_h` product, and nothing needs the gradient
of the zero state. The loops run two steps per iteration, half the loop bookkeeping.

Sequences in a batch may differ in length. They are packed (`packing.PackedLayout`): sorted by
length, only their valid steps stored, so the loops and the input projections never compute on
padding (random crops leave ~12% of a padded batch empty), and the backward direction reads each
sequence's valid part reversed. A single unidirectional layer deals its batch into two shards that
the loops step side by side, so that both cores have a matrix product to do at every step.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

from lstm_mnist.packing import PackedLayout, Shard, Step, StepSlices
from lstm_mnist.tf1 import tf

NUM_GATES = 4  # input, forget, output, candidate: the column blocks of w_x, w_h and b
FORGET_BIAS = 1.0
DIRECTIONS = ("fw", "bw")
# LSTMs a loop should step side by side so that two cores (the machine this project is measured
# on) both have work at every step: a stack with fewer gets its batch dealt into shards.
PARALLEL_LSTMS = 2


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


class LSTMTrace(NamedTuple):
    """One LSTM's values at every step, for looking at (`LSTMStack.trace`), each float32
    `[time, batch, hidden]`, time-major, zero past each example's length.

    Attributes:
      input_gate, forget_gate, output_gate: the gates after their sigmoid.
      cell: the cell state c_t.
      output: the output h_t.
    """

    input_gate: tf.Tensor
    forget_gate: tf.Tensor
    output_gate: tf.Tensor
    cell: tf.Tensor
    output: tf.Tensor


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


def project_inputs(inputs: tf.Tensor, w_x: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """`inputs W_x + b`: `[rows, input]` -> `[rows, 4*hidden]`, for all steps at once before a loop
    or for one step inside it."""
    # bias_add, not `+`: its gradient is one BiasAddGrad instead of a broadcasting Sum (2x faster
    # on a 3584 x 512 gradient here).
    return tf.nn.bias_add(tf.matmul(inputs, w_x), b)


def lstm_step(w_h: tf.Tensor, projected_input: tf.Tensor,
              state: Optional[LSTMState]) -> Tuple[LSTMState, GateActivations]:
    """One LSTM step.

    Args:
      w_h: `[hidden, 4*hidden]` the recurrent matrix.
      projected_input: `[batch, 4*hidden]`, this step's `x_t W_x + b`.
      state: the previous step's LSTMState, or None for the zero state of a first step (whose
        `h W_h` and `f * c` are zero, so not computed).

    Returns:
      The new LSTMState (its `h` is the step's output) and the GateActivations its backward pass
      needs.
    """
    gates = projected_input if state is None else projected_input + tf.matmul(state.h, w_h)
    # Four equal splits, not slices: measured faster per step than one sigmoid over a [3h | h]
    # split.
    input_gate, forget_gate, output_gate, candidate = tf.split(gates, NUM_GATES, axis=1)
    activations = GateActivations(tf.sigmoid(input_gate), tf.sigmoid(forget_gate),
                                  tf.sigmoid(output_gate), tf.tanh(candidate), None)
    c = activations.input_gate * activations.candidate
    if state is not None:
        c = activations.forget_gate * state.c + c
    tanh_cell = tf.tanh(c)
    return (LSTMState(h=activations.output_gate * tanh_cell, c=c),
            activations._replace(tanh_cell=tanh_cell))


def lstm_step_backward(w_h_transposed: tf.Tensor, activations: GateActivations,
                       previous_c: Optional[tf.Tensor], d_h: tf.Tensor,
                       d_c: tf.Tensor) -> Tuple[tf.Tensor, Optional[LSTMState]]:
    """The gradient of one `lstm_step`: the chain rule through the cell equations, by hand.

    Args:
      w_h_transposed: `[4*hidden, hidden]`, `w_h` transposed once outside the loop (a product with a
        transposed operand is ~1.5x slower per step).
      activations: what the forward step saved.
      previous_c: `[batch, hidden]` the cell the step started from, or None for the zero state
        of a first step.
      d_h: `[batch, hidden]` dLoss/dh_t, from the layer above (or the loss) plus from step t+1.
      d_c: `[batch, hidden]` dLoss/dc_t from step t+1.

    Returns:
      `d_gates [batch, 4*hidden]` (dLoss w.r.t. the step's pre-activation gates, i.e. w.r.t. its
      projected input; the weight gradients are products with it) and the LSTMState of gradients
      w.r.t. the previous state `(d h_{t-1}, d c_{t-1})`, None for the zero state (a constant).
    """
    i, f, o, g, tanh_cell = activations
    # h = o * tanh(c), and c also flows on to step t+1 directly. TanhGrad(y, dy) = dy * (1 - y^2)
    # and SigmoidGrad(y, dy) = dy * y * (1 - y), each one op, from the saved activations y.
    d_c = d_c + tf.raw_ops.TanhGrad(y=tanh_cell, dy=d_h * o)
    # From the zero state the forget gate scaled nothing, so its gradient is zero; zeros_like(f)
    # gives the popped forget gate a consumer, or its pop would be pruned and left on the stack.
    d_forget = (tf.zeros_like(f) if previous_c is None
                else tf.raw_ops.SigmoidGrad(y=f, dy=d_c * previous_c))
    d_gates = tf.concat([tf.raw_ops.SigmoidGrad(y=i, dy=d_c * g), d_forget,
                         tf.raw_ops.SigmoidGrad(y=o, dy=d_h * tanh_cell),
                         tf.raw_ops.TanhGrad(y=g, dy=d_c * i)], axis=1)
    if previous_c is None:
        return d_gates, None
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


class ChainTensors(NamedTuple):
    """What of a chain the loops of `run_chains` read and differentiate; its gradient has the same
    structure. The first LSTM's input was projected before the loop (its `w_x` and `b` get their
    gradient from that projection); each LSTM above projects its input inside the loop.

    Attributes:
      projected_inputs: packed `[rows, 4*hidden_0]`.
      w_h: each LSTM's recurrent matrix `[hidden_k, 4*hidden_k]`, bottom first.
      w_x: each LSTM's input matrix `[hidden_{k-1}, 4*hidden_k]`, for k >= 1.
      b: each LSTM's bias `[4*hidden_k]`, for k >= 1.
    """

    projected_inputs: tf.Tensor
    w_h: Tuple[tf.Tensor, ...]
    w_x: Tuple[tf.Tensor, ...]
    b: Tuple[tf.Tensor, ...]

    @classmethod
    def of(cls, chain: Chain) -> "ChainTensors":
        def tensors(variables):
            return tuple(tf.convert_to_tensor(v) for v in variables)

        above = chain.layers[1:]
        return cls(tf.convert_to_tensor(chain.projected_inputs),
                   tensors(w.w_h for w in chain.layers), tensors(w.w_x for w in above),
                   tensors(w.b for w in above))


class TransposedMatrices(NamedTuple):
    """A chain's `w_h` and `w_x` (as in ChainTensors), transposed once before the backward loop: a
    product with a transposed operand is ~1.5x slower per step."""

    w_h: Tuple[tf.Tensor, ...]
    w_x: Tuple[tf.Tensor, ...]


class LSTMRecord(NamedTuple):
    """What the forward loop keeps of one LSTM, besides its activation stacks (`_new_stacks`).

    Attributes:
      h, c: the state after each step, TensorArrays indexed by step (entry t `[counts[t],
        hidden]`), so a concatenation is the packed outputs (or cells).
      pushed: a scalar that depends on every push onto the activation stacks so far: the next
        step's pushes wait for it (a stack must get its values in step order), and so does the
        backward loop's first pop. A scalar of its own, not `h`: only the backward loop reaches
        it, so a forward pass alone prunes the pushes away.
    """

    h: tf.TensorArray
    c: tf.TensorArray
    pushed: tf.Tensor


class ChainRecord(NamedTuple):
    """What the forward loop keeps of one chain: an LSTMRecord per LSTM, and the input of each LSTM
    above the first (the output of the LSTM below, after dropout), TensorArrays indexed by step."""

    lstms: Tuple[LSTMRecord, ...]
    inputs: Tuple[tf.TensorArray, ...]


def run_chains(chains: Sequence[Chain], shards: Sequence[Shard], parallel_iterations: int = 32
               ) -> List[Tuple[LSTMState, ...]]:
    """Steps independent LSTM stacks ("chains") through time in one `tf.while_loop`, with a
    hand-written gradient: a second loop that runs `lstm_step_backward` from the last step to the
    second. The first step, from the zero state, runs before the first loop and after the second.
    Each loop iteration runs two steps, so the loop's own ops (a `Merge`, `Switch` and
    `NextIteration` per loop variable) run half as often, with the empty step after the last
    (`packing.StepSlices`) when the steps to cover are odd in number.

    Independent chains, such as the two directions of a bidirectional layer, share the loop so their
    steps run side by side. Sequences are packed (see `packing`): at step t only the `counts[t]`
    examples still running are computed.

    The backward loop pops the gate activations the forward loop pushed onto stacks, so one run
    (`Session.run`) can evaluate one gradient of a forward pass: a second one (another
    `tf.gradients` call) works in a run of its own, and fails if fetched in the same run, the two
    backward loops taking each other's values. A forward pass alone (evaluation) pushes nothing.

    Args:
      chains: the Chains, each over a packed shard of a batch.
      shards: each chain's Shard (chains may share one).
      parallel_iterations: how many loop iterations TensorFlow may run concurrently.

    Returns:
      Per chain, per LSTM, an LSTMState of packed `[rows, hidden]` tensors: its output and cell at
      every valid step of its shard (`Shard.last_rows` of them are each example's final state).
    """
    masks = [tuple(chain.dropout_masks or [None] * (len(chain.layers) - 1)) for chain in chains]

    # tf.custom_gradient flattens the argument and the outputs with tf.nest, and hands `gradient`
    # the outputs' gradients flat; it expects the argument's gradients in the argument's structure.
    @tf.custom_gradient
    def loop(tensors: List[ChainTensors]):
        slices = _step_slices(shards)  # shared by both loops
        last_step = _last_step(tf.shape(shards[0].counts)[0])
        stacks = [tuple(_new_stacks() for _ in chain.w_h) for chain in tensors]
        records = _forward(tensors, masks, last_step, slices, stacks, parallel_iterations)
        packed = [tuple(LSTMState(record.h.concat(), record.c.concat())
                        for record in chain_record.lstms) for chain_record in records]

        def gradient(*d_packed):
            # None where nothing depends on an output. Gradients through `layout.last` arrive as
            # IndexedSlices: made dense once here, not at every step inside the loop.
            d_packed = tf.nest.pack_sequence_as(
                packed, [None if d is None else tf.convert_to_tensor(d) for d in d_packed])
            d_gates = _backward(tensors, masks, last_step, slices, stacks, records, d_packed,
                                parallel_iterations)
            return [_weight_gradients(*chain) for chain in zip(d_gates, packed, records, shards)]

        return packed, gradient

    return loop([ChainTensors.of(chain) for chain in chains])


def _tensor_array(size: tf.Tensor, width: int) -> tf.TensorArray:
    # Steps have different row counts: element shapes may differ in their first dimension.
    return tf.TensorArray(tf.float32, size=size, infer_shape=False, clear_after_read=False,
                          element_shape=tf.TensorShape([None, width]))


def _any_rows(tensor: tf.Tensor, width: int) -> tf.Tensor:
    """`tensor` `[rows, width]` with the static shape `[None, width]`: a loop state whose row count
    changes from step to step must not start with a fixed one (a constant batch would give it
    one), and placeholder_with_default relaxes it."""
    return tf.placeholder_with_default(tensor, [None, width])


def _zero_rows(rows: tf.Tensor, width: int) -> tf.Tensor:
    """`[rows, width]` zeros with the static shape `[None, width]` (see `_any_rows`)."""
    return _any_rows(tf.zeros([rows, width]), width)


def _step_slices(shards: Sequence[Shard]) -> List[StepSlices]:
    """Each chain's StepSlices; chains on the same shard share them."""
    built = {}
    return [built.setdefault(id(shard), shard.steps()) for shard in shards]


def _rows_at(slices: List[StepSlices], step: tf.Tensor) -> List[Step]:
    """Each chain's Step at `step`; chains on the same shard share it."""
    built = {}
    return [built.setdefault(id(shard_slices), shard_slices.at(step)) for shard_slices in slices]


def _hidden_size(w_h: tf.Tensor) -> int:
    return int(w_h.shape[0])


def _dropped(rows_tensor: tf.Tensor, mask: Optional[tf.Tensor], rows: Step) -> tf.Tensor:
    """A step's rows times the step's rows of a packed dropout mask (or as they are, for None)."""
    return rows_tensor if mask is None else rows_tensor * rows.rows(mask)


def _new_stacks() -> GateActivations:
    """A stack per saved activation (a GateActivations of stack handles): the forward loop pushes
    each step's activations, the backward loop pops them, last step first.

    A TensorArray would keep them as well, but it is a loop variable: its flow passes through four
    loop-control ops (Merge, Switch, Identity, NextIteration) at every step. A stack is a resource
    the loops only refer to (TensorFlow's own gradient of a while loop keeps its values this way).
    """
    return GateActivations(*(tf.raw_ops.StackV2(max_size=-1, elem_type=tf.float32)
                             for _ in GateActivations._fields))


def _push(stacks: GateActivations, activations: GateActivations, after: tf.Tensor) -> tf.Tensor:
    """Pushes one step's activations once `after` (the previous step's pushes) is done; returns
    a scalar that depends on these pushes."""
    with tf.control_dependencies([after]):
        pushes = [tf.raw_ops.StackPushV2(handle=stack, elem=value)
                  for stack, value in zip(stacks, activations)]
    with tf.control_dependencies(pushes):
        return tf.identity(after)


def _pop(stacks: GateActivations, width: int, after: tf.Tensor) -> GateActivations:
    """Pops one step's activations, `[rows, width]` each, once `after` is computed."""
    with tf.control_dependencies([after]):
        activations = [tf.raw_ops.StackPopV2(handle=stack, elem_type=tf.float32)
                       for stack in stacks]
    for activation in activations:
        activation.set_shape([None, width])
    return GateActivations(*activations)


def _last_step(steps: tf.Tensor) -> tf.Tensor:
    """The last step the loops run, two steps per iteration from step 1: `steps - 1`, or the empty
    step `steps` after it if `steps - 1` is odd."""
    return steps - 1 + (steps - 1) % 2


def _two_steps(body):
    """A loop body that runs `body` (loop variables -> loop variables) twice."""
    return lambda *loop_vars: body(*body(*loop_vars))


def _forward(tensors: List[ChainTensors], masks, last_step: tf.Tensor,
             slices: List[StepSlices], stacks, parallel_iterations: int) -> List[ChainRecord]:
    """The forward loop: at every step, each chain's LSTMs bottom-up. Returns what it recorded."""
    records = [ChainRecord(tuple(_new_record(last_step + 1, _hidden_size(w_h))
                                 for w_h in chain.w_h),
                           tuple(_tensor_array(last_step + 1, int(w_x.shape[0]))
                                 for w_x in chain.w_x))
               for chain in tensors]

    def body(step, states, records):
        rows = _rows_at(slices, step)
        stepped = [_chain_step(*chain, step)
                   for chain in zip(tensors, masks, stacks, states, records, rows)]
        return step + 1, [state for state, _ in stepped], [record for _, record in stepped]

    # The first step, before the loop: from the zero state (None), which needs no products.
    _, states, records = body(0, [None] * len(tensors), records)
    states = [tuple(LSTMState(*(_any_rows(part, _hidden_size(w_h)) for part in state))
                    for state, w_h in zip(chain_states, chain.w_h))
              for chain_states, chain in zip(states, tensors)]
    _, _, records = tf.while_loop(lambda step, *_: step < last_step, _two_steps(body),
                                  (1, states, records), parallel_iterations=parallel_iterations)
    return records


def _new_record(steps: tf.Tensor, hidden_size: int) -> LSTMRecord:
    """An empty LSTMRecord."""
    return LSTMRecord(h=_tensor_array(steps, hidden_size), c=_tensor_array(steps, hidden_size),
                      pushed=tf.constant(0.0))


def _chain_step(tensors: ChainTensors, masks, stacks: Tuple[GateActivations, ...],
                states: Optional[Tuple[LSTMState, ...]], record: ChainRecord, rows: Step,
                step: tf.Tensor) -> Tuple[Tuple[LSTMState, ...], ChainRecord]:
    """Step `step` of one chain in the forward loop, its LSTMs bottom-up; `states` is None at the
    first step (the zero state)."""
    new_states, lstm_records, inputs = [], [], list(record.inputs)
    projected = rows.rows(tensors.projected_inputs)
    for index, (w_h, lstm_stacks, state, lstm_record) in enumerate(
            zip(tensors.w_h, stacks, states or [None] * len(tensors.w_h), record.lstms)):
        if index > 0:
            below = _dropped(new_states[-1].h, masks[index - 1], rows)
            inputs[index - 1] = inputs[index - 1].write(step, below)
            projected = project_inputs(below, tensors.w_x[index - 1], tensors.b[index - 1])
        state, lstm_record = _lstm_forward(w_h, projected, state, lstm_stacks, lstm_record, rows,
                                           step)
        new_states.append(state)
        lstm_records.append(lstm_record)
    return tuple(new_states), ChainRecord(tuple(lstm_records), tuple(inputs))


def _lstm_forward(w_h: tf.Tensor, projected_input: tf.Tensor, state: LSTMState,
                  stacks: GateActivations, record: LSTMRecord, rows: Step,
                  step: tf.Tensor) -> Tuple[LSTMState, LSTMRecord]:
    """One LSTM's `lstm_step` in the forward loop, recorded for the backward loop.

    Args:
      projected_input: `[counts[t], 4*hidden]`.
      state: the state after step t-1, `[counts[t-1], hidden]`; None at t = 0 (the zero state).
    """
    if state is not None:
        # Examples that ended drop out of the state: the running ones are its first rows.
        state = LSTMState(rows.running(state.h), rows.running(state.c))
    state, activations = lstm_step(w_h, projected_input, state)
    return state, LSTMRecord(h=record.h.write(step, state.h), c=record.c.write(step, state.c),
                             pushed=_push(stacks, activations, after=record.pushed))


def _backward(tensors: List[ChainTensors], masks, last_step: tf.Tensor,
              slices: List[StepSlices], stacks, records: List[ChainRecord], d_packed,
              parallel_iterations: int) -> List[Tuple[tf.Tensor, ...]]:
    """The backward loop: from the forward loop's last step to the second, each chain's LSTMs
    top-down, then the first step after it.

    Args:
      d_packed: the gradients of `run_chains`' outputs, in their structure (None where nothing
        depends on them).

    Returns:
      Per chain, per LSTM, its packed `d_gates [rows, 4*hidden]`: dLoss w.r.t. the pre-activation
      gates of every valid step (for the first LSTM, the gradient of the projected inputs).
    """
    transposed, d_states, d_gates = [], [], []
    for chain, record in zip(tensors, records):
        transposed.append(TransposedMatrices(tuple(map(tf.transpose, chain.w_h)),
                                             tuple(map(tf.transpose, chain.w_x))))
        # The gradient from the steps after the last: no rows (no example runs past it). Each
        # step's pops wait for the step's d_h, so the first ones wait for these: for the forward
        # loop's last pushes.
        with tf.control_dependencies([lstm.pushed for lstm in record.lstms]):
            d_states.append(tuple(LSTMState(*[_zero_rows(0, _hidden_size(w_h))] * 2)
                                  for w_h in chain.w_h))
        d_gates.append(tuple(_tensor_array(last_step + 1, NUM_GATES * _hidden_size(w_h))
                             for w_h in chain.w_h))

    def body(step, d_states, d_gates, first_step=False):
        rows = _rows_at(slices, step)
        stepped = [_chain_step_backward(*chain, step, first_step) for chain in
                   zip(transposed, masks, stacks, records, d_packed, d_states, d_gates, rows)]
        return step - 1, [d for d, _ in stepped], [g for _, g in stepped]

    _, d_states, d_gates = tf.while_loop(lambda step, *_: step > 0, _two_steps(body),
                                         (last_step, d_states, d_gates),
                                         parallel_iterations=parallel_iterations)
    # The first step, after the loop: its d_gates, without the gradient of the zero state.
    _, _, d_gates = body(0, d_states, d_gates, first_step=True)
    return [tuple(ta.concat() for ta in chain) for chain in d_gates]


def _weight_gradients(d_gates: Tuple[tf.Tensor, ...], states: Tuple[LSTMState, ...],
                      record: ChainRecord, shard: Shard) -> ChainTensors:
    """A chain's gradients (a ChainTensors) from its LSTMs' packed d_gates.

    Each weight's gradient is one product over all steps: `w_h`'s pairs the d_gates of every step
    but the first (which started from the zero state) with the `h` that step started from (rows
    `shard.previous_rows` of the packed outputs), `w_x`'s with the step's input. Inside the
    backward loop, one small product and one `[hidden, 4*hidden]` sum per step and LSTM would
    compete for the cores with the sequential d_h chains (part1 training 1.09x, part2 1.05x
    faster without them, docs/performance.md).

    Args:
      d_gates: per LSTM, packed `[rows, 4*hidden]`, as `_backward` returns them.
      states: per LSTM, the packed forward states `[rows, hidden]`.
      record: the chain's ChainRecord (its `inputs`, the input of each LSTM above the first).
      shard: the chain's Shard.
    """
    d_w_h = tuple(tf.matmul(tf.gather(state.h, shard.previous_rows), d[shard.batch_size:],
                            transpose_a=True) for state, d in zip(states, d_gates))
    d_w_x = tuple(tf.matmul(inputs.concat(), d, transpose_a=True)
                  for inputs, d in zip(record.inputs, d_gates[1:]))
    d_b = tuple(tf.reduce_sum(d, axis=0) for d in d_gates[1:])
    return ChainTensors(d_gates[0], d_w_h, d_w_x, d_b)


def _chain_step_backward(transposed: TransposedMatrices, masks,
                         stacks: Tuple[GateActivations, ...], record: ChainRecord,
                         d_outputs: Tuple[LSTMState, ...], d_states: Tuple[LSTMState, ...],
                         d_gates: Tuple[tf.TensorArray, ...], rows: Step, step: tf.Tensor,
                         first_step: bool
                         ) -> Tuple[Tuple[LSTMState, ...], Tuple[tf.TensorArray, ...]]:
    """Step `step` of one chain in the backward loop, its LSTMs top-down.

    Args:
      d_outputs: per LSTM, the gradient of its packed outputs (fields may be None).
      d_states: per LSTM, dLoss/d(state after step t), from step t+1 (`[counts[t+1], hidden]`).
      d_gates: per LSTM, a TensorArray of each step's d_gates.
      first_step: whether this is step 0, which started from the zero state.

    Returns:
      Per LSTM, dLoss/d(state after step t-1) (None for the first step), and the TensorArrays
      written.
    """
    d_states, d_gates, d_from_above = list(d_states), list(d_gates), None
    for index in reversed(range(len(d_states))):
        # Examples whose last step this is start with no gradient from later steps.
        d_h, d_c = rows.grow(d_states[index].h), rows.grow(d_states[index].c)
        if d_outputs[index].h is not None:
            d_h += rows.rows(d_outputs[index].h)
        if d_outputs[index].c is not None:
            d_c += rows.rows(d_outputs[index].c)
        if d_from_above is not None:
            d_h += d_from_above
        step_d_gates, d_states[index] = _lstm_backward(
            transposed.w_h[index], stacks[index], record.lstms[index], LSTMState(d_h, d_c), rows,
            step, first_step)
        d_gates[index] = d_gates[index].write(step, step_d_gates)
        if index > 0:
            d_from_above = _dropped(tf.matmul(step_d_gates, transposed.w_x[index - 1]),
                                    masks[index - 1], rows)
    return tuple(d_states), tuple(d_gates)


def _lstm_backward(w_h_transposed: tf.Tensor, stacks: GateActivations, record: LSTMRecord,
                   d_state: LSTMState, rows: Step, step: tf.Tensor,
                   first_step: bool) -> Tuple[tf.Tensor, Optional[LSTMState]]:
    """One LSTM's `lstm_step_backward` in the backward loop, from what the forward loop recorded.

    Args:
      d_state: dLoss/d(h_t, c_t), `[counts[t], hidden]`.
      first_step: whether t is 0 (the step from the zero state).

    Returns:
      `d_gates [counts[t], 4*hidden]` and dLoss/d(h_{t-1}, c_{t-1}) `[counts[t], hidden]` (None
      at the first step).
    """
    # d_state depends on every value step t+1 popped, so step t's pops come after them.
    activations = _pop(stacks, int(w_h_transposed.shape[1]), after=d_state.h)
    previous_c = None if first_step else rows.running(record.c.read(step - 1))
    return lstm_step_backward(w_h_transposed, activations, previous_c, d_state.h, d_state.c)


class LSTMStack:
    """A deep, optionally bidirectional LSTM; its variables are created once, on construction.

    Variables are named `<name>/layer_<k>/<fw|bw>/{w_x,w_h,b}`: these names are the checkpoint
    format.
    """

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], bidirectional: bool = False,
                 name: str = "lstm", num_shards: Optional[int] = None):
        """Args:
          input_size: features per step of the input sequence (28 pixels here).
          hidden_sizes: units of each layer, bottom first.
          bidirectional: add a backward LSTM to every layer; layer k+1 then reads both directions'
            outputs concatenated.
          name: variable scope.
          num_shards: how many shards each batch is dealt into (`packing.PackedLayout`); every
            shard runs its own chains in the same loops, independent work for the cores. By
            default, enough for PARALLEL_LSTMS LSTMs at once: 2 for one unidirectional layer
            (1.15x more training examples/s, docs/performance.md), else 1 (the layers of a
            deep stack already overlap, and the two directions of a bidirectional one). Dropout
            draws per shard; nothing else depends on it.
        """
        self.bidirectional = bidirectional
        side_by_side = 2 if bidirectional else len(hidden_sizes)
        self.num_shards = num_shards or max(1, PARALLEL_LSTMS // side_by_side)
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
        layout = PackedLayout.from_lengths(lengths, self.num_shards)
        inputs = [dropout(shard_inputs, dropout_rate) for shard_inputs in layout.pack(inputs)]
        # Every mask is drawn up front, from the packed shapes, so no layer waits for its random
        # numbers: masks[layer][direction][shard].
        masks = [[[dropout_mask([shard.num_rows, w.hidden_size], dropout_rate)
                   for shard in layout.shards] for w in layer] for layer in self.layers[:-1]]
        run = self._bidirectional if self.bidirectional else self._unidirectional
        return run(inputs, layout, masks)

    def trace(self, inputs: tf.Tensor, lengths: tf.Tensor) -> Tuple[Tuple[LSTMTrace, ...], ...]:
        """The gates, cells and outputs of every LSTM at every step, for inference (no dropout, no
        gradient): the stack's own `project_inputs` and `lstm_step` on its own variables, stepped
        by `tf.scan` over the padded batch instead of the packed training loop.

        Args:
          inputs: float32 `[time, batch, input_size]`, time-major, as for `__call__`.
          lengths: int32 `[batch]`, valid steps per example.

        Returns:
          `trace[layer][direction]`, an LSTMTrace in time order: for the backward direction, step
          t holds its values after reading steps `lengths - 1` down to t, so its output at step 0
          is the one `__call__` classifies.
        """
        valid = tf.cast(tf.range(tf.shape(inputs)[0])[:, None] < lengths[None, :], tf.float32)

        def reverse(sequence):  # the valid part only: padding stays at the end
            return tf.reverse_sequence(sequence, lengths, seq_axis=0, batch_axis=1)

        traces = []
        for layer in self.layers:
            layer_traces = []
            for direction, weights in zip(DIRECTIONS, layer):
                if direction == "fw":
                    traced = _trace_lstm(weights, inputs)
                else:
                    traced = LSTMTrace(*map(reverse, _trace_lstm(weights, reverse(inputs))))
                layer_traces.append(LSTMTrace(*(values * valid[..., None] for values in traced)))
            traces.append(tuple(layer_traces))
            inputs = tf.concat([traced.output for traced in layer_traces], axis=2)
        return tuple(traces)

    def _unidirectional(self, inputs: List[tf.Tensor], layout: PackedLayout,
                        masks) -> StackOutput:
        # One chain per shard holding every layer: all layers advance in one loop.
        layers = [forward for (forward,) in self.layers]
        chains = [_chain(shard_inputs, layers, [m[shard] for (m,) in masks])
                  for shard, shard_inputs in enumerate(inputs)]
        states = run_chains(chains, layout.shards)
        final_states = tuple((_final_state(layout, [s[layer] for s in states]),)
                             for layer in range(len(layers)))
        return StackOutput(layout.unpack([s[-1].h for s in states]), final_states[-1][0].h,
                           final_states)

    def _bidirectional(self, inputs: List[tf.Tensor], layout: PackedLayout,
                       masks) -> StackOutput:
        # A backward layer needs the whole output sequence of the layer below, so layers run one
        # after the other, each advancing its two directions in one loop. The backward LSTM's
        # outputs stay in its reading order (`backward[t]` has read steps len-1 .. len-1-t) until
        # the layer above needs them in time order.
        final_states = []
        for index, (forward, backward) in enumerate(self.layers):
            if index > 0:
                forward_masks, backward_masks = masks[index - 1]
                inputs = _features(_masked(forward_outputs, forward_masks),
                                   layout.reverse(_masked(backward_outputs, backward_masks)))
            forward_chains = [_chain(x, [forward]) for x in inputs]
            backward_chains = [_chain(x, [backward]) for x in layout.reverse(inputs)]
            states = run_chains(forward_chains + backward_chains, layout.shards * 2)
            forward_states, backward_states = states[:len(inputs)], states[len(inputs):]
            forward_outputs = [state.h for (state,) in forward_states]
            backward_outputs = [state.h for (state,) in backward_states]
            final_states.append(tuple(_final_state(layout, [state for (state,) in direction])
                                      for direction in (forward_states, backward_states)))
        # The backward output at lengths - 1 has read the whole valid sequence.
        last_output = tf.concat([state.h for state in final_states[-1]], axis=1)
        outputs = _features(forward_outputs, layout.reverse(backward_outputs))
        return StackOutput(layout.unpack(outputs), last_output, tuple(final_states))


def _final_state(layout: PackedLayout, states: Sequence[LSTMState]) -> LSTMState:
    """Each example's state after its last valid step, from one LSTM's packed states per shard."""
    return LSTMState(layout.last([s.h for s in states]), layout.last([s.c for s in states]))


def _masked(parts: Sequence[tf.Tensor], masks: Sequence[Optional[tf.Tensor]]) -> List[tf.Tensor]:
    """Packed shards times their dropout masks (or as they are, for None)."""
    return [part if mask is None else part * mask for part, mask in zip(parts, masks)]


def _features(forward: Sequence[tf.Tensor], backward: Sequence[tf.Tensor]) -> List[tf.Tensor]:
    """Per shard, the forward and backward outputs of the same steps side by side."""
    return [tf.concat(pair, axis=1) for pair in zip(forward, backward)]


def _trace_lstm(weights: LSTMWeights, inputs: tf.Tensor) -> LSTMTrace:
    """Steps one LSTM through padded, time-major `inputs [time, batch, input]` with `lstm_step`,
    keeping everything: the LSTMTrace of every step (also of padding)."""
    steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
    hidden = weights.hidden_size
    projected = project_inputs(tf.reshape(inputs, [steps * batch, int(inputs.shape[2])]),
                               weights.w_x, weights.b)
    w_h = tf.convert_to_tensor(weights.w_h)

    def step(previous: LSTMTrace, projected_input: tf.Tensor) -> LSTMTrace:
        state, gates = lstm_step(w_h, projected_input, LSTMState(previous.output, previous.cell))
        return LSTMTrace(gates.input_gate, gates.forget_gate, gates.output_gate, state.c, state.h)

    zeros = tf.zeros([batch, hidden])
    return tf.scan(step, tf.reshape(projected, [steps, batch, NUM_GATES * hidden]),
                   initializer=LSTMTrace(*[zeros] * len(LSTMTrace._fields)))


def _chain(inputs: tf.Tensor, layers: Sequence[LSTMWeights], dropout_masks=None) -> Chain:
    """The Chain of `layers` reading packed `inputs`, projected for the first LSTM."""
    return Chain(project_inputs(inputs, layers[0].w_x, layers[0].b), layers, dropout_masks)
