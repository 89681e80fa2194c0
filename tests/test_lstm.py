"""The LSTM: the textbook implementation against numpy, a Python unroll and its own hand-written
gradient; the fast implementation against the textbook one (the oracle) and TensorFlow's fused
kernel; then the fast path's own machinery."""

from collections import Counter

import numpy as np
import pytest

from benchmarks.references import BlockLSTMStack, block_lstm
from helpers import numpy_lstm
from lstm_mnist import textbook
from lstm_mnist.cell import (FORGET_BIAS, LSTMState, create_lstm_weights, lstm_step,
                             lstm_step_backward, project_inputs)
from lstm_mnist.lstm import LSTMStack
from lstm_mnist.packed_loops import Chain, _first_step, _first_step_backward, run_chains
from lstm_mnist.packing import PackedLayout
from lstm_mnist.tf1 import tf

INPUT_SIZE = 28
IMPLEMENTATIONS = ("fast", "textbook")


def _random_inputs(time, batch, seed=0):
    return np.random.default_rng(seed).normal(size=(time, batch, INPUT_SIZE)).astype(np.float32)


def _run(fetches, feed=None, before=()):
    """Runs `fetches` once in a new session of the default graph after initialising its variables
    and running `before`."""
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(list(before))
        return session.run(fetches, feed)


def _gradient_tolerance(reference):
    # A weight's gradient is a float32 sum over time x batch rows, summed in another order by
    # each implementation: the rounding scales with its largest entries, also in an entry that
    # cancels to near zero.
    return dict(atol=1e-5 * max(1.0, np.abs(reference).max()), rtol=1e-4)


# The textbook LSTM against numpy, a Python unroll, and its own hand-written backward loop.

def test_textbook_lstm_equals_a_numpy_recomputation_and_starts_with_forget_bias():
    x = _random_inputs(6, 4, seed=3)
    with tf.Graph().as_default():
        weights = create_lstm_weights(INPUT_SIZE, 10, "lstm")
        history = textbook.unroll(weights, tf.constant(x))
        got, (w_x, w_h, b) = _run([history, list(weights)])
    assert np.all(b[10:20] == FORGET_BIAS) and np.all(b[:10] == 0) and np.all(b[20:] == 0)
    want = numpy_lstm(x, w_x, w_h, b)
    for field, value in [("output", got.states.h), ("cell", got.states.c),
                         ("input_gate", got.activations.input_gate),
                         ("forget_gate", got.activations.forget_gate),
                         ("output_gate", got.activations.output_gate)]:
        np.testing.assert_allclose(value, want[field], atol=1e-5, err_msg=field)
    np.testing.assert_allclose(got.activations.tanh_cell, np.tanh(want["cell"]), atol=1e-5)


def test_textbook_while_loop_equals_a_python_unroll_of_the_cell():
    x = _random_inputs(5, 3, seed=4)
    with tf.Graph().as_default():
        weights = create_lstm_weights(INPUT_SIZE, 6, "lstm")
        looped = textbook.unroll(weights, tf.constant(x)).states
        state = LSTMState(tf.zeros([3, 6]), tf.zeros([3, 6]))
        unrolled = []
        for x_t in x:
            state, _ = lstm_step(weights.w_h, project_inputs(x_t, weights.w_x, weights.b), state)
            unrolled.append(state)
        looped, unrolled = _run([looped, unrolled])
    np.testing.assert_allclose(looped.h, [s.h for s in unrolled], atol=1e-6)
    np.testing.assert_allclose(looped.c, [s.c for s in unrolled], atol=1e-6)


def test_hand_written_backprop_through_time_equals_autodiff_of_the_loop():
    x = _random_inputs(7, 4, seed=5)
    mix = np.random.default_rng(6).normal(size=(7, 4, 5)).astype(np.float32)
    with tf.Graph().as_default():
        weights = create_lstm_weights(INPUT_SIZE, 5, "lstm")
        inputs = tf.constant(x)
        history = textbook.unroll(weights, inputs)
        d_inputs, d_weights = textbook.backprop_through_time(weights, inputs, history,
                                                             tf.constant(mix))
        autodiff = tf.gradients(tf.reduce_sum(history.states.h * mix), [inputs, *weights])
        got, want = _run([[d_inputs, *d_weights], autodiff])
    for name, a, b in zip(["inputs", "w_x", "w_h", "b"], got, want):
        np.testing.assert_allclose(a, b, err_msg=name, **_gradient_tolerance(b))
        assert np.abs(a).max() > 1e-3, name


# The fast LSTM against the textbook one: the same variables, the same numbers.

def _column_pattern(shape, *args, **kwargs):
    """A stand-in for tf.random.uniform whose numbers depend only on the column (0, 1/3, 2/3, ...):
    dropout then drops the same units whatever the layout of the rows, packed or padded."""
    pattern = tf.cast(tf.range(shape[-1]) % 3, tf.float32) / 3.0
    return tf.broadcast_to(pattern, shape)


# batch == hidden (8) pins the TF2 `where` broadcasting trap: a [batch] mask applied to
# [batch, hidden] would silently mask columns instead of rows.
@pytest.mark.parametrize("hidden_sizes,bidirectional,num_shards", [
    ([8], False, 1), ([8], False, 2), ([9, 6], False, 1), ([9, 6], False, 3), ([6], True, 1),
    ([6, 9], True, 2)])
@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_fast_lstm_equals_the_textbook_lstm_forward_and_backward(hidden_sizes, bidirectional,
                                                                  num_shards, rate, monkeypatch):
    lengths = np.array([5, 3, 7, 1, 7, 2, 6, 4], np.int32)
    x = _random_inputs(7, 8, seed=5)
    monkeypatch.setattr(tf.random, "uniform", _column_pattern)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        fast = LSTMStack(INPUT_SIZE, hidden_sizes, bidirectional, num_shards=num_shards)
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            slow = LSTMStack(INPUT_SIZE, hidden_sizes, bidirectional, implementation="textbook")
        inputs = tf.constant(x)
        mix = tf.constant(np.random.default_rng(1).normal(size=(8, fast.output_size)), tf.float32)
        wrt = [inputs] + tf.trainable_variables()
        outputs, gradients = [], []
        for stack in (fast, slow):
            output = stack(inputs, tf.constant(lengths), rate)
            # Weighs the last valid outputs and every valid step's outputs differently.
            loss = tf.reduce_sum(output.last_output * mix) + tf.reduce_sum(output.outputs ** 2)
            outputs.append(output)
            gradients.append(tf.gradients(loss, wrt))
        randomize_biases = [v.assign(tf.random_normal(v.shape)) for v in tf.trainable_variables()
                            if v.op.name.endswith("/b")]
        (a, b), (a_grads, b_grads) = _run([outputs, gradients], before=randomize_biases)
    np.testing.assert_allclose(a.last_output, b.last_output, atol=1e-5)
    np.testing.assert_allclose(a.outputs, b.outputs, atol=1e-5)  # zero past each length in both
    for a_layer, b_layer in zip(a.final_states, b.final_states):
        for a_state, b_state in zip(a_layer, b_layer):
            np.testing.assert_allclose(a_state.h, b_state.h, atol=1e-5)
            np.testing.assert_allclose(a_state.c, b_state.c, atol=1e-5)
    for tensor, ours, oracle in zip(wrt, a_grads, b_grads):
        np.testing.assert_allclose(ours, oracle, err_msg=tensor.name, **_gradient_tolerance(oracle))
        assert np.abs(ours).max() > 0, tensor.name


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("hidden_sizes,bidirectional", [([16], False), ([12, 8], False),
                                                         ([8, 6], True)])
def test_matches_tensorflows_fused_block_lstm(implementation, hidden_sizes, bidirectional):
    lengths = np.array([9, 4, 7, 1, 9], np.int32)
    x = _random_inputs(9, 5)
    with tf.Graph().as_default():
        ours = LSTMStack(INPUT_SIZE, hidden_sizes, bidirectional, implementation=implementation)
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            theirs = BlockLSTMStack(INPUT_SIZE, hidden_sizes, bidirectional)  # the same variables
        inputs = tf.constant(x)
        mix = tf.constant(np.random.default_rng(1).normal(size=(5, ours.output_size)), tf.float32)
        wrt = [inputs] + tf.global_variables()
        results = []
        for stack in (ours, theirs):
            output = stack(inputs, tf.constant(lengths))
            results.append([output, tf.gradients(tf.reduce_sum(output.last_output * mix), wrt)])
        (a, a_grads), (b, b_grads) = _run(results)
    np.testing.assert_allclose(a.last_output, b.last_output, atol=1e-5)
    valid = np.arange(9)[:, None] < lengths[None, :]
    np.testing.assert_allclose(a.outputs[valid], b.outputs[valid], atol=1e-5)
    for tensor, ours_grad, theirs_grad in zip(wrt, a_grads, b_grads):
        np.testing.assert_allclose(ours_grad, theirs_grad, err_msg=tensor.name,
                                   **_gradient_tolerance(theirs_grad))
        assert np.abs(ours_grad).max() > 0, tensor.name


@pytest.mark.parametrize("time,batch,hidden", [(1, 1, 4), (28, 32, 32), (13, 3, 8)])
def test_fast_lstm_matches_block_lstm_cells_at_every_step(time, batch, hidden):
    x = _random_inputs(time, batch)
    with tf.Graph().as_default():
        tf.set_random_seed(time)  # the same weights in every run: a failure reproduces
        inputs = tf.constant(x)
        stack = LSTMStack(INPUT_SIZE, [hidden])
        ours = stack(inputs, tf.fill([batch], time))
        reference = block_lstm(stack.layers[0][0], inputs)
        final = ours.final_states[0][0]
        (outputs, h, c), (want_outputs, want_cells) = _run([[ours.outputs, final.h, final.c],
                                                            [reference.h, reference.cs]])
    np.testing.assert_allclose(outputs, want_outputs, atol=1e-5)
    np.testing.assert_allclose(h, want_outputs[-1], atol=1e-5)
    np.testing.assert_allclose(c, want_cells[-1], atol=1e-5)


# What both implementations must get right, each checked on its own.

def _run_stack(implementation, hidden_sizes, bidirectional, feeds, seed=0):
    """Builds one stack and runs it on several `(inputs, lengths)` feeds with the same weights."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        inputs = tf.placeholder(tf.float32, [None, None, INPUT_SIZE])
        lengths = tf.placeholder(tf.int32, [None])
        result = LSTMStack(INPUT_SIZE, hidden_sizes, bidirectional,
                           implementation=implementation)(inputs, lengths)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return [session.run(result, {inputs: x, lengths: n}) for x, n in feeds]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("hidden_sizes,bidirectional", [([8], False), ([8, 5], False),
                                                         ([6, 8], True)])
def test_last_valid_state_equals_running_each_example_alone(implementation, hidden_sizes,
                                                            bidirectional):
    lengths = np.array([5, 3, 7, 1, 7, 2, 6, 4], np.int32)
    time, batch = lengths.max(), len(lengths)
    padded = _random_inputs(time, batch, seed=5)
    valid = np.arange(time)[:, None] < lengths[None, :]
    padded[~valid] = 0.0
    garbage = padded.copy()
    garbage[~valid] = np.random.default_rng(9).normal(size=(~valid).sum() * INPUT_SIZE).reshape(
        -1, INPUT_SIZE) * 100
    alone = [(padded[:n, b:b + 1], np.array([n], np.int32)) for b, n in enumerate(lengths)]
    results = _run_stack(implementation, hidden_sizes, bidirectional,
                         [(padded, lengths), (garbage, lengths)] + alone)
    zero_padded, garbage_padded, singles = results[0], results[1], results[2:]
    for b, single in enumerate(singles):
        np.testing.assert_allclose(zero_padded.last_output[b], single.last_output[0], atol=1e-5)
        # Every valid step's output, not only the last, is independent of the padding.
        np.testing.assert_allclose(zero_padded.outputs[:lengths[b], b], single.outputs[:, 0],
                                   atol=1e-5)
        # Final states are each example's own, after its last valid step.
        for layer, single_layer in zip(zero_padded.final_states, single.final_states):
            for state, single_state in zip(layer, single_layer):
                np.testing.assert_allclose(state.c[b], single_state.c[0], atol=1e-5)
                np.testing.assert_allclose(state.h[b], single_state.h[0], atol=1e-5)
    np.testing.assert_allclose(garbage_padded.last_output, zero_padded.last_output, atol=1e-5)
    np.testing.assert_array_equal(zero_padded.outputs[~valid], 0.0)


def test_last_valid_gathers_per_example_step():
    outputs = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    with tf.Graph().as_default(), tf.Session() as session:
        got = session.run(textbook.last_valid(tf.constant(outputs), tf.constant([4, 1, 2])))
    np.testing.assert_array_equal(got, [outputs[3, 0], outputs[0, 1], outputs[1, 2]])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_backward_direction_reads_only_the_valid_part_reversed(implementation):
    lengths = np.array([4, 6, 2], np.int32)
    x = _random_inputs(6, 3, seed=7)
    x[np.arange(6)[:, None] >= lengths[None, :]] = 0.0
    with tf.Graph().as_default():
        stack = LSTMStack(INPUT_SIZE, [5], bidirectional=True, implementation=implementation)
        got, (forward, backward) = _run([stack(tf.constant(x), tf.constant(lengths)),
                                         stack.layers[0]])
    for b, n in enumerate(lengths):
        forward_h = numpy_lstm(x[:n, b:b + 1], *forward)["output"]
        backward_h = numpy_lstm(x[:n, b:b + 1][::-1], *backward)["output"]
        # Classifier features: forward state at the last valid step, backward state at step 0.
        np.testing.assert_allclose(got.last_output[b], np.concatenate(
            [forward_h[-1, 0], backward_h[-1, 0]]), atol=1e-5)
        # Per-step outputs: the backward half at step t has read steps n-1 down to t.
        np.testing.assert_allclose(got.outputs[:n, b, 5:], backward_h[::-1, 0], atol=1e-5)
        np.testing.assert_allclose(got.outputs[:n, b, :5], forward_h[:, 0], atol=1e-5)


def test_deep_stack_has_per_layer_shapes_and_names():
    with tf.Graph().as_default():
        for bidirectional, scope in ((False, "uni"), (True, "bi")):
            stack = LSTMStack(INPUT_SIZE, [64, 32, 16], bidirectional, name=scope)
            directions = 2 if bidirectional else 1
            inputs = [INPUT_SIZE, 64 * directions, 32 * directions]
            for k, (size_in, hidden) in enumerate(zip(inputs, [64, 32, 16])):
                for weights, direction in zip(stack.layers[k], ("fw", "bw")):
                    assert weights.w_x.op.name == f"{scope}/layer_{k}/{direction}/w_x"
                    assert weights.w_x.shape.as_list() == [size_in, 4 * hidden]
                    assert weights.w_h.shape.as_list() == [hidden, 4 * hidden]
                    assert weights.b.shape.as_list() == [4 * hidden]
            assert stack.output_size == 16 * directions


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_deep_stack_layer_k_reads_layer_k_minus_1(implementation):
    x = _random_inputs(5, 2, seed=11)
    with tf.Graph().as_default():
        stack = LSTMStack(INPUT_SIZE, [6, 4], implementation=implementation)
        outputs, (bottom,), (top,) = _run([stack(tf.constant(x), tf.fill([2], 5)).outputs]
                                          + stack.layers)
    bottom_h = numpy_lstm(x, *bottom)["output"]
    np.testing.assert_allclose(outputs, numpy_lstm(bottom_h, *top)["output"], atol=1e-5)


def _outputs_with_dropout(implementation, hidden_sizes, x, rates):
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        rate = tf.placeholder_with_default(0.0, [])
        stack = LSTMStack(INPUT_SIZE, hidden_sizes, implementation=implementation)
        result = stack(tf.constant(x), tf.fill([x.shape[1]], x.shape[0]), rate)
        # A random bias makes the state nonzero even where the inputs are all zero.
        randomize_biases = [w.b.assign(tf.random_normal(w.b.shape)) for (w,) in stack.layers]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(randomize_biases)
            return [session.run(result.outputs, {rate: r} if r is not None else {}) for r in rates]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_no_dropout_on_the_recurrent_path(implementation):
    # With all-zero inputs, input dropout has nothing to drop, but the outputs still depend on the
    # recurrent path (the bias makes h nonzero), which must see no dropout at all.
    zeros = np.zeros((8, 4, INPUT_SIZE), np.float32)
    no_dropout, with_dropout = _outputs_with_dropout(implementation, [16], zeros, [0.0, 0.5])
    assert np.abs(no_dropout).max() > 1e-2
    np.testing.assert_array_equal(with_dropout, no_dropout)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_dropout_is_on_between_layers_when_fed_and_off_by_default(implementation):
    x = _random_inputs(8, 4, seed=2)
    default, again, dropped = _outputs_with_dropout(implementation, [16, 16], x,
                                                    [None, None, 0.5])
    np.testing.assert_array_equal(default, again)  # evaluation is deterministic
    assert np.abs(dropped - default).max() > 1e-3


def test_an_unknown_implementation_is_refused():
    with tf.Graph().as_default(), pytest.raises(ValueError, match="fast"):
        LSTMStack(INPUT_SIZE, [4], implementation="quick")


# The fast path's own machinery: the cell's backward step, the packed loops' hand-written
# gradient, the first step outside the loops, the shards and the activation stacks.

def _one_cell(seed, batch=4, hidden=5):
    """An LSTM's weights (input size 3), and random constants: a projected input `[batch,
    4*hidden]`, then a previous state and gradients `d_h`, `d_c`, each `[batch, hidden]`."""
    rng = np.random.default_rng(seed)
    weights = create_lstm_weights(3, hidden, "cell")
    projected = tf.constant(rng.normal(size=(batch, 4 * hidden)), tf.float32)
    h, c, d_h, d_c = (tf.constant(rng.normal(size=(batch, hidden)), tf.float32) for _ in range(4))
    return weights, projected, LSTMState(h, c), d_h, d_c


def test_lstm_step_backward_equals_autodiff_of_lstm_step():
    with tf.Graph().as_default():
        weights, projected, previous, d_h, d_c = _one_cell(seed=6)
        state, activations = lstm_step(weights.w_h, projected, previous)
        d_gates, d_previous_c = lstm_step_backward(activations, previous.c, d_h, d_c)
        loss = tf.reduce_sum(state.h * d_h) + tf.reduce_sum(state.c * d_c)
        want = tf.gradients(loss, [projected, previous.h, previous.c])
        got = [d_gates, tf.matmul(d_gates, weights.w_h, transpose_b=True), d_previous_c]
        got, want = _run([got, want])
    for name, a, b in zip(["d_gates", "d_h_previous", "d_c_previous"], got, want):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)


def test_the_first_step_outside_the_loops_equals_a_step_from_the_zero_state_without_products():
    with tf.Graph().as_default():
        weights, projected, _, d_h, d_c = _one_cell(seed=7)
        zeros = tf.zeros_like(d_h)
        ops_before = len(tf.get_default_graph().get_operations())
        state, activations = _first_step(projected)
        d_gates = _first_step_backward(activations, LSTMState(d_h, d_c))
        new_ops = tf.get_default_graph().get_operations()[ops_before:]
        assert not [op for op in new_ops if op.type == "MatMul"]
        zero_state, zero_activations = lstm_step(weights.w_h, projected, LSTMState(zeros, zeros))
        zero_d_gates, _ = lstm_step_backward(zero_activations, zeros, d_h, d_c)
        from_none, from_zeros = _run([[state.h, state.c, d_gates],
                                      [zero_state.h, zero_state.c, zero_d_gates]])
    for name, a, b in zip(["h", "c", "d_gates"], from_none, from_zeros):
        np.testing.assert_allclose(a, b, atol=1e-7, err_msg=name)
        assert np.abs(a).max() > 1e-3, name


@pytest.mark.parametrize("lengths, num_shards", [([5, 5, 5], 1), ([3, 5, 1, 4], 1),
                                                ([3, 5, 1, 4, 2], 2), ([2, 3], 3),
                                                ([6, 3, 6, 1, 4], 2), ([2, 1], 1)])
def test_hand_written_backward_loop_equals_autodiff_of_the_unrolled_cell(lengths, num_shards):
    # Two chains in one loop (a two-LSTM chain with a dropout mask between its LSTMs, and a
    # one-LSTM chain), each run on every shard of the batch (three shards of two examples: one is
    # empty), and a loss on every valid output of both and on the bottom LSTM's cells:
    # run_chains' backward loop against tf.gradients through a Python unroll of the padded batch.
    # The loops run two steps per iteration from step 1: the longest lengths 6 and 2 leave them an
    # odd count of steps to cover, so they also run their empty step.
    lengths = np.array(lengths, np.int32)
    time, batch, sizes = lengths.max(), len(lengths), (6, 4, 5)
    valid = (np.arange(time)[:, None] < lengths[None, :])[:, :, None]
    rng = np.random.default_rng(4)

    def normal(*shape):
        return tf.constant(rng.normal(size=shape), tf.float32)

    with tf.Graph().as_default():
        bottom = create_lstm_weights(28, sizes[0], "bottom")
        top = create_lstm_weights(sizes[0], sizes[1], "top")
        other = create_lstm_weights(28, sizes[2], "other")
        projected = [normal(time, batch, 4 * sizes[0]), normal(time, batch, 4 * sizes[2])]
        mask = tf.constant((rng.random((time, batch, sizes[0])) > 0.3) / 0.7, tf.float32)
        # Zero past each length: what happens there must not count.
        mixes = [normal(time, batch, n) * valid for n in (sizes[1], sizes[0], sizes[2])]
        layout = PackedLayout.from_lengths(tf.constant(lengths), num_shards)
        chains = [Chain(*args) for args in zip(layout.pack(projected[0]),
                                               [[bottom, top]] * num_shards,
                                               [[m] for m in layout.pack(mask)])]
        chains += [Chain(p, [other]) for p in layout.pack(projected[1])]
        states = run_chains(chains, layout.shards * 2)
        shard_states = [[s[0].c for s in states[:num_shards]],
                        [s[1].h for s in states[:num_shards]],
                        [s[0].h for s in states[num_shards:]]]
        ours = sum(tf.reduce_sum(layout.unpack(packed) * mix)
                   for packed, mix in zip([shard_states[1], shard_states[0], shard_states[2]],
                                          mixes))

        states = [LSTMState(tf.zeros([batch, n]), tf.zeros([batch, n])) for n in sizes]
        loss = 0.0
        for t in range(time):
            states[0], _ = lstm_step(bottom.w_h, projected[0][t], states[0])
            above = project_inputs(states[0].h * mask[t], top.w_x, top.b)
            states[1], _ = lstm_step(top.w_h, above, states[1])
            states[2], _ = lstm_step(other.w_h, projected[1][t], states[2])
            loss += sum(tf.reduce_sum(value * mix[t]) for value, mix in
                        zip([states[1].h, states[0].c, states[2].h], mixes))
        wrt = projected + [bottom.w_h, top.w_x, top.w_h, top.b, other.w_h]
        got, want = _run([[ours] + tf.gradients(ours, wrt), [loss] + tf.gradients(loss, wrt)])
    names = ["loss", "projected", "other projected", "bottom w_h", "top w_x", "top w_h", "top b",
             "other w_h"]
    for name, a, b in zip(names, got, want):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4, err_msg=name)
        assert np.abs(a).max() > 1e-3, name


def test_one_unidirectional_layer_is_dealt_into_two_shards_deeper_stacks_into_one():
    with tf.Graph().as_default():
        shards = [LSTMStack(INPUT_SIZE, hidden, bidirectional, name=f"s{k}").num_shards
                  for k, (hidden, bidirectional) in enumerate(
                      [([8], False), ([8, 8], False), ([8], True), ([8, 8, 8], False)])]
    assert shards == [2, 1, 1, 1]


def _executed_ops(session, fetches, feed=None):
    """How many times each op type ran in one `session.run` of `fetches`."""
    metadata = tf.RunMetadata()
    session.run(fetches, feed, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                run_metadata=metadata)
    names = [node.node_name for device in metadata.step_stats.dev_stats
             for node in device.node_stats]
    types = {op.name: op.type for op in session.graph.get_operations()}
    return Counter(types.get(name) for name in names)


def test_activation_stacks_are_filled_only_for_a_backward_pass_that_empties_them():
    # The forward loop pushes each step's gate activations onto stacks that the backward loop
    # pops. A forward pass alone (evaluation) must not push them; one backward pass pops every
    # value pushed; two gradients of one forward pass work in separate runs, and in the same run
    # they fail (there are values for one backward loop only) instead of returning numbers.
    lengths = np.array([4, 6, 2, 6, 5], np.int32)
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        stack = LSTMStack(INPUT_SIZE, [8, 6])
        output = stack(tf.constant(_random_inputs(6, 5, seed=8)), tf.constant(lengths))
        loss = tf.reduce_sum(output.last_output ** 2)
        first, second = (tf.gradients(scale * loss, tf.trainable_variables()) for scale in (1, 2))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            forward_only = _executed_ops(session, loss)
            with_backward = _executed_ops(session, first)
            once, twice = session.run(first), session.run(second)
            with pytest.raises(tf.errors.OpError):
                session.run([first, second])
    assert forward_only["StackPushV2"] == 0 and forward_only["StackPopV2"] == 0
    # Five activations (GateActivations) of two LSTMs at each of the 6 steps and the empty 7th
    # that the loops, two steps per iteration, add to cover steps 1-5.
    assert with_backward["StackPushV2"] == with_backward["StackPopV2"] == 5 * 2 * 7
    for a, b in zip(once, twice):
        np.testing.assert_allclose(2 * a, b, rtol=1e-5, atol=1e-6)
