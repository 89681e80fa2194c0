"""The fast LSTM: packed sequences, one loop for many LSTMs, and backpropagation through time by
hand. Read `textbook.py` first: this file computes the same numbers on the same variables.

It differs from the textbook in five ways, each to do less inside the loops:

- Sequences are packed (`packing.PackedLayout`): sorted by length, only their valid steps stored,
  so neither the loops nor the input projections compute on padding (random crops leave ~12% of
  a padded batch empty), and a backward LSTM reads each sequence's valid part reversed by a row
  gather.
- Independent LSTMs ("chains") advance in one loop, side by side: all layers of a unidirectional
  stack (layer k at step t runs while layer k-1 works on step t+1), both directions of a
  bidirectional layer, the shards of a batch dealt in two so that two cores both have work.
- The gradient is a second loop written by hand (`tf.custom_gradient`), `cell.lstm_step_backward`
  from the last step to the second, fed by what the forward loop pushed onto stacks: fewer ops
  per step than TensorFlow's derivative of the loop, which saves every intermediate. The loop
  carries only the sequential d_h and d_c chains; every weight's gradient is one product over
  all steps after it (`_weight_gradients`), as fused RNN kernels do.
- The first step runs outside the loops: from the zero state it needs no `h W_h` product, and
  nothing needs the gradient of the zero state (`_first_step`, `_first_step_backward`).
- Each loop iteration runs two steps, half the loop's own bookkeeping ops.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

from lstm_mnist.activation_stacks import new_stacks, pop, push
from lstm_mnist.cell import (NUM_GATES, GateActivations, LSTMState, LSTMWeights,
                             gate_activations, lstm_step, lstm_step_backward, project_inputs)
from lstm_mnist.packing import Shard, Step, StepSlices, any_rows, step_array, zero_rows
from lstm_mnist.tf1 import tf


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
    product with a transposed operand is slower per step."""

    w_h: Tuple[tf.Tensor, ...]
    w_x: Tuple[tf.Tensor, ...]


class LSTMRecord(NamedTuple):
    """What the forward loop keeps of one LSTM, besides its activation stacks (`activation_stacks`).

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
    hand-written gradient: a second loop that runs `cell.lstm_step_backward` from the last step to
    the second. The first step, from the zero state, runs before the first loop and after the
    second.
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
        stacks = [tuple(new_stacks() for _ in chain.w_h) for chain in tensors]
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
                           tuple(step_array(last_step + 1, int(w_x.shape[0]))
                                 for w_x in chain.w_x))
               for chain in tensors]

    def body(step, states, records):
        rows = _rows_at(slices, step)
        stepped = [_chain_step(*chain, step)
                   for chain in zip(tensors, masks, stacks, states, records, rows)]
        return step + 1, [state for state, _ in stepped], [record for _, record in stepped]

    # The first step, before the loop: from the zero state (None), which needs no products.
    _, states, records = body(0, [None] * len(tensors), records)
    states = [tuple(LSTMState(*(any_rows(part, _hidden_size(w_h)) for part in state))
                    for state, w_h in zip(chain_states, chain.w_h))
              for chain_states, chain in zip(states, tensors)]
    _, _, records = tf.while_loop(lambda step, *_: step < last_step, _two_steps(body),
                                  (1, states, records), parallel_iterations=parallel_iterations)
    return records


def _new_record(steps: tf.Tensor, hidden_size: int) -> LSTMRecord:
    """An empty LSTMRecord."""
    return LSTMRecord(h=step_array(steps, hidden_size), c=step_array(steps, hidden_size),
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
    if state is None:
        state, activations = _first_step(projected_input)
    else:
        # Examples that ended drop out of the state: the running ones are its first rows.
        state = LSTMState(rows.running(state.h), rows.running(state.c))
        state, activations = lstm_step(w_h, projected_input, state)
    return state, LSTMRecord(h=record.h.write(step, state.h), c=record.c.write(step, state.c),
                             pushed=push(stacks, activations, after=record.pushed))


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
            d_states.append(tuple(LSTMState(*[zero_rows(0, _hidden_size(w_h))] * 2)
                                  for w_h in chain.w_h))
        d_gates.append(tuple(step_array(last_step + 1, NUM_GATES * _hidden_size(w_h))
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
    compete for the cores with the sequential d_h chains (docs/performance.md measures it).

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
    activations = pop(stacks, int(w_h_transposed.shape[1]), after=d_state.h)
    if first_step:
        return _first_step_backward(activations, d_state), None
    previous_c = rows.running(record.c.read(step - 1))
    d_gates, d_previous_c = lstm_step_backward(activations, previous_c, d_state.h, d_state.c)
    return d_gates, LSTMState(tf.matmul(d_gates, w_h_transposed), d_previous_c)


def _first_step(projected_input: tf.Tensor) -> Tuple[LSTMState, GateActivations]:
    """`cell.lstm_step` from the zero state, without the products that are zero there: `h W_h`
    and `f * c`."""
    activations = gate_activations(projected_input)
    c = activations.input_gate * activations.candidate
    tanh_cell = tf.tanh(c)
    return (LSTMState(h=activations.output_gate * tanh_cell, c=c),
            activations._replace(tanh_cell=tanh_cell))


def _first_step_backward(activations: GateActivations, d_state: LSTMState) -> tf.Tensor:
    """The d_gates of `_first_step`, without the gradient of the zero state (a constant)."""
    # The zero cell it started from: the forget gate's gradient is zero, and this zero still
    # gives the popped forget gate a consumer, or its pop would be pruned and left on the stack.
    d_gates, _ = lstm_step_backward(activations, tf.zeros_like(d_state.c), d_state.h, d_state.c)
    return d_gates


