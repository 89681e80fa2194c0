"""The hand-written LSTM against TensorFlow's fused kernel, a numpy recomputation, and itself."""

from collections import Counter

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import lstm_mnist  # noqa: F401  (switches TensorFlow to TF1 graph mode)
from benchmarks.references import block_lstm, last_valid
from lstm_mnist.lstm import (FORGET_BIAS, Chain, LSTMStack, LSTMState, create_lstm_weights,
                             lstm_step, lstm_step_backward, project_inputs, run_chains)
from lstm_mnist.packing import PackedLayout

INPUT_SIZE = 28


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(x, w_x, w_h, b):
    """Recomputes the cell in numpy, gate columns input | forget | output | candidate.

    Returns every step's h `[time, batch, hidden]` and the final c `[batch, hidden]`.
    """
    hidden = w_h.shape[0]
    h = np.zeros((x.shape[1], hidden), np.float64)
    c = np.zeros_like(h)
    outputs = []
    for x_t in x:
        gates = x_t @ w_x + h @ w_h + b
        i, f, o, g = np.split(gates, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), c


def _random_inputs(time, batch, seed=0):
    return np.random.default_rng(seed).normal(size=(time, batch, INPUT_SIZE)).astype(np.float32)


@pytest.mark.parametrize("time,batch,hidden", [(1, 1, 4), (7, 5, 16), (28, 32, 32), (13, 3, 8)])
def test_matches_fused_block_lstm_outputs_states_and_gradients(time, batch, hidden):
    x = _random_inputs(time, batch)
    with tf.Graph().as_default():
        tf.set_random_seed(time)  # the same weights in every run: a failure reproduces
        inputs = tf.constant(x)
        stack = LSTMStack(INPUT_SIZE, [hidden])
        ours = stack(inputs, tf.fill([batch], time))
        weights = stack.layers[0][0]
        reference = block_lstm(weights, inputs)
        reference_h, reference_c = reference.h, reference.cs
        # A loss that weighs every step and unit differently, so gradients are not symmetric.
        mix = tf.constant(np.random.default_rng(1).normal(size=(time, batch, hidden)), tf.float32)
        wrt = [inputs, weights.w_x, weights.w_h, weights.b]
        our_grads = tf.gradients(tf.reduce_sum(ours.outputs * mix), wrt)
        reference_grads = tf.gradients(tf.reduce_sum(reference_h * mix), wrt)
        final = ours.final_states[0][0]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            got = session.run([ours.outputs, final.h, final.c, ours.last_output, our_grads])
            want = session.run([reference_h, reference_h[-1], reference_c[-1], reference_h[-1],
                                reference_grads])
    outputs, h, c, last, grads = got
    np.testing.assert_allclose(outputs, want[0], atol=1e-5)
    np.testing.assert_allclose(h, want[1], atol=1e-5)
    np.testing.assert_allclose(c, want[2], atol=1e-5)
    np.testing.assert_allclose(last, want[3], atol=1e-5)
    for name, ours_grad, reference_grad in zip(["inputs", "w_x", "w_h", "b"], grads, want[4]):
        # A weight's gradient is a float32 sum over time x batch rows, summed in another order by
        # each implementation: the rounding scales with its largest entries (~1e-6 of them), also
        # in an entry that cancels to near zero.
        scale = max(1.0, np.abs(reference_grad).max())
        np.testing.assert_allclose(ours_grad, reference_grad, atol=1e-5 * scale, rtol=1e-4,
                                   err_msg=name)
    if time > 1:  # with one step, h_{t-1} = 0 and w_h rightly gets no gradient
        assert np.abs(grads[2]).max() > 1e-3, "the recurrent weights must receive gradient"


def test_matches_numpy_recomputation_and_starts_with_forget_bias():
    x = _random_inputs(6, 4, seed=3)
    with tf.Graph().as_default():
        stack = LSTMStack(INPUT_SIZE, [10])
        result = stack(tf.constant(x), tf.fill([4], 6))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            outputs, final, (w_x, w_h, b) = session.run(
                [result.outputs, result.final_states[0][0], list(stack.layers[0][0])])
    assert np.all(b[10:20] == FORGET_BIAS) and np.all(b[:10] == 0) and np.all(b[20:] == 0)
    want_outputs, want_c = numpy_lstm(x.astype(np.float64), w_x, w_h, b)
    np.testing.assert_allclose(outputs, want_outputs, atol=1e-5)
    np.testing.assert_allclose(final.c, want_c, atol=1e-5)


def _run_stack(hidden_sizes, bidirectional, feeds, num_shards, seed=0):
    """Builds one stack and runs it on several `(inputs, lengths)` feeds with the same weights."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        inputs = tf.placeholder(tf.float32, [None, None, INPUT_SIZE])
        lengths = tf.placeholder(tf.int32, [None])
        result = LSTMStack(INPUT_SIZE, hidden_sizes, bidirectional,
                           num_shards=num_shards)(inputs, lengths)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return [session.run(result, {inputs: x, lengths: n}) for x, n in feeds]


# batch == hidden (8) pins the TF2 `where` broadcasting trap: a [batch] mask applied to
# [batch, hidden] would silently mask columns instead of rows.
@pytest.mark.parametrize("hidden_sizes,bidirectional,num_shards", [
    ([8], False, 1), ([8], False, 2), ([8, 5], False, 1), ([8, 5], False, 3), ([8], True, 1),
    ([6, 8], True, 2)])
def test_last_valid_state_equals_running_each_example_alone(hidden_sizes, bidirectional,
                                                            num_shards):
    lengths = np.array([5, 3, 7, 1, 7, 2, 6, 4], np.int32)
    time, batch = lengths.max(), len(lengths)
    padded = _random_inputs(time, batch, seed=5)
    valid = np.arange(time)[:, None] < lengths[None, :]
    padded[~valid] = 0.0
    garbage = padded.copy()
    garbage[~valid] = np.random.default_rng(9).normal(size=(~valid).sum() * INPUT_SIZE).reshape(
        -1, INPUT_SIZE) * 100
    alone = [(padded[:n, b:b + 1], np.array([n], np.int32)) for b, n in enumerate(lengths)]
    results = _run_stack(hidden_sizes, bidirectional,
                         [(padded, lengths), (garbage, lengths)] + alone, num_shards)
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


def test_last_valid_gathers_per_example_step():
    outputs = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    with tf.Graph().as_default(), tf.Session() as session:
        got = session.run(last_valid(tf.constant(outputs), tf.constant([4, 1, 2])))
    np.testing.assert_array_equal(got, [outputs[3, 0], outputs[0, 1], outputs[1, 2]])


def test_backward_direction_reads_only_the_valid_part_reversed():
    lengths = np.array([4, 6, 2], np.int32)
    x = _random_inputs(6, 3, seed=7)
    x[np.arange(6)[:, None] >= lengths[None, :]] = 0.0
    with tf.Graph().as_default():
        stack = LSTMStack(INPUT_SIZE, [5], bidirectional=True)
        result = stack(tf.constant(x), tf.constant(lengths))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            got, (forward, backward) = session.run([result, stack.layers[0]])
    for b, n in enumerate(lengths):
        forward_h, _ = numpy_lstm(x[:n, b:b + 1].astype(np.float64), *forward)
        backward_h, _ = numpy_lstm(x[:n, b:b + 1][::-1].astype(np.float64), *backward)
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


def test_deep_stack_layer_k_reads_layer_k_minus_1():
    x = _random_inputs(5, 2, seed=11)
    with tf.Graph().as_default():
        stack = LSTMStack(INPUT_SIZE, [6, 4])
        result = stack(tf.constant(x), tf.fill([2], 5))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            outputs, (bottom,), (top,) = session.run([result.outputs] + stack.layers)
    bottom_h, _ = numpy_lstm(x.astype(np.float64), *bottom)
    top_h, _ = numpy_lstm(bottom_h, *top)
    np.testing.assert_allclose(outputs, top_h, atol=1e-5)


def _outputs_with_dropout(hidden_sizes, x, rates):
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        rate = tf.placeholder_with_default(0.0, [])
        stack = LSTMStack(INPUT_SIZE, hidden_sizes)
        result = stack(tf.constant(x), tf.fill([x.shape[1]], x.shape[0]), rate)
        # A random bias makes the state nonzero even where the inputs are all zero.
        randomize_biases = [w.b.assign(tf.random_normal(w.b.shape)) for (w,) in stack.layers]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(randomize_biases)
            return [session.run(result.outputs, {rate: r} if r is not None else {}) for r in rates]


def test_no_dropout_on_the_recurrent_path():
    # With all-zero inputs, input dropout has nothing to drop, but the outputs still depend on the
    # recurrent path (the bias makes h nonzero), which must see no dropout at all.
    zeros = np.zeros((8, 4, INPUT_SIZE), np.float32)
    no_dropout, with_dropout = _outputs_with_dropout([16], zeros, [0.0, 0.5])
    assert np.abs(no_dropout).max() > 1e-2
    np.testing.assert_array_equal(with_dropout, no_dropout)


def test_dropout_is_on_between_layers_when_fed_and_off_by_default():
    x = _random_inputs(8, 4, seed=2)
    default, again, dropped = _outputs_with_dropout([16, 16], x, [None, None, 0.5])
    np.testing.assert_array_equal(default, again)  # evaluation is deterministic
    assert np.abs(dropped - default).max() > 1e-3


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
        chains = [Chain(*args) for args in zip(layout.pack(projected[0]), [[bottom, top]] * num_shards,
                                               [[m] for m in layout.pack(mask)])]
        chains += [Chain(p, [other]) for p in layout.pack(projected[1])]
        states = run_chains(chains, layout.shards * 2)
        shard_states = [[s[0].c for s in states[:num_shards]], [s[1].h for s in states[:num_shards]],
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
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            got, want = session.run([[ours] + tf.gradients(ours, wrt),
                                     [loss] + tf.gradients(loss, wrt)])
    names = ["loss", "projected", "other projected", "bottom w_h", "top w_x", "top w_h", "top b",
             "other w_h"]
    for name, a, b in zip(names, got, want):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4, err_msg=name)
        assert np.abs(a).max() > 1e-3, name


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
        d_gates, d_previous = lstm_step_backward(tf.transpose(weights.w_h), activations,
                                                 previous.c, d_h, d_c)
        loss = tf.reduce_sum(state.h * d_h) + tf.reduce_sum(state.c * d_c)
        want = tf.gradients(loss, [projected, previous.h, previous.c])
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            got, want = session.run([[d_gates, d_previous.h, d_previous.c], want])
    for name, a, b in zip(["d_gates", "d_h_previous", "d_c_previous"], got, want):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)


def test_a_first_step_from_no_state_equals_a_step_from_the_zero_state_without_products():
    # The loops run the first step outside with state None: it must compute what a step from
    # zeros computes, forward and backward, without a matrix product.
    with tf.Graph().as_default():
        weights, projected, _, d_h, d_c = _one_cell(seed=7)
        zeros = tf.zeros_like(d_h)
        w_h_transposed = tf.transpose(weights.w_h)
        results = []
        for previous in (None, LSTMState(zeros, zeros)):
            ops_before = len(tf.get_default_graph().get_operations())
            state, activations = lstm_step(weights.w_h, projected, previous)
            d_gates, d_previous = lstm_step_backward(
                w_h_transposed, activations, None if previous is None else previous.c, d_h, d_c)
            new_ops = tf.get_default_graph().get_operations()[ops_before:]
            results.append([state.h, state.c, d_gates])
            if previous is None:
                assert d_previous is None
                assert not [op for op in new_ops if op.type == "MatMul"]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            from_none, from_zeros = session.run(results)
    for name, a, b in zip(["h", "c", "d_gates"], from_none, from_zeros):
        np.testing.assert_allclose(a, b, atol=1e-7, err_msg=name)
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
