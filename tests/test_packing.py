"""Packed sequences against a numpy reading of the padded batch."""

import numpy as np
import pytest

from lstm_mnist.packing import PackedLayout
from lstm_mnist.tf1 import tf

# Ties (3, 3), a length-1 example, and padding beyond the longest length (time 7 > 6).
LENGTHS = np.array([3, 6, 1, 3, 5], np.int32)
TIME = 7


def _padded(seed=0):
    return np.random.default_rng(seed).normal(size=(TIME, len(LENGTHS), 2)).astype(np.float32)


def _numpy_packed(padded):
    """Valid rows step by step, examples longest first (stable on ties)."""
    order = np.argsort(-LENGTHS, kind="stable")
    return np.concatenate([padded[t, order[LENGTHS[order] > t]] for t in range(LENGTHS.max())])


def _run(build, num_shards=1):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build(PackedLayout.from_lengths(tf.constant(LENGTHS), num_shards)))


def test_pack_keeps_valid_rows_step_by_step_longest_first():
    padded = _padded()
    [packed], counts, offsets = _run(lambda layout: (layout.pack(tf.constant(padded)),
                                                     layout.shards[0].counts,
                                                     layout.shards[0].offsets))
    np.testing.assert_array_equal(packed, _numpy_packed(padded))
    np.testing.assert_array_equal(counts, [5, 4, 4, 2, 2, 1])
    np.testing.assert_array_equal(offsets, [0, 5, 9, 13, 15, 17])


def test_shards_are_dealt_from_the_sorted_examples_like_cards():
    # Longest first: examples 1 (6 steps), 4 (5), 0 (3), 3 (3), 2 (1); shard 0 gets ranks 0, 2, 4.
    shards = _run(lambda layout: [(shard.counts, shard.padded_positions[:, 1])
                                  for shard in layout.shards], num_shards=2)
    (counts_0, examples_0), (counts_1, examples_1) = shards
    np.testing.assert_array_equal(counts_0, [3, 2, 2, 1, 1, 1])
    np.testing.assert_array_equal(examples_0[:3], [1, 0, 2])
    np.testing.assert_array_equal(counts_1, [2, 2, 2, 1, 1, 0])
    np.testing.assert_array_equal(examples_1[:2], [4, 3])


@pytest.mark.parametrize("num_shards", [1, 2, 3, 6])
def test_unpack_restores_the_padded_batch_with_zero_padding(num_shards):
    padded = _padded()
    unpacked = _run(lambda layout: layout.unpack(layout.pack(tf.constant(padded))), num_shards)
    valid = np.arange(LENGTHS.max())[:, None] < LENGTHS[None, :]
    np.testing.assert_array_equal(unpacked[valid], padded[:LENGTHS.max()][valid])
    assert np.all(unpacked[~valid] == 0)


@pytest.mark.parametrize("num_shards", [1, 2, 3, 6])
def test_last_is_each_examples_last_valid_row_in_original_order(num_shards):
    padded = _padded()
    last = _run(lambda layout: layout.last(layout.pack(tf.constant(padded))), num_shards)
    np.testing.assert_array_equal(last, padded[LENGTHS - 1, np.arange(len(LENGTHS))])


@pytest.mark.parametrize("num_shards", [1, 2])
def test_reverse_reverses_each_valid_sequence_and_its_gradient_reverses_back(num_shards):
    padded, weights = _padded(1), _padded(2)

    def build(layout):
        packed = layout.pack(tf.constant(padded))
        reversed_packed = layout.reverse(packed)
        # d/dpacked of sum(reverse(packed) * w) is reverse(w): the reordering is an involution.
        loss = sum(tf.reduce_sum(r * w) for r, w in
                   zip(reversed_packed, layout.pack(tf.constant(weights))))
        return (layout.unpack(reversed_packed), tf.gradients(loss, packed),
                layout.reverse(layout.pack(tf.constant(weights))))

    unpacked, gradients, reversed_weights = _run(build, num_shards)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(unpacked[:n, b], padded[:n, b][::-1])
    for gradient, expected in zip(gradients, reversed_weights):
        np.testing.assert_array_equal(gradient, expected)


@pytest.mark.parametrize("num_shards", [1, 2])
def test_previous_rows_point_at_the_row_of_the_same_example_one_step_earlier(num_shards):
    # Every packed row after the first step's, (t, example) with t >= 1, must find the packed row
    # of (t - 1, example): the state its step started from.
    padded = _padded()

    def build(layout):
        return [(tf.gather(part, shard.previous_rows), shard.padded_positions, shard.batch_size)
                for part, shard in zip(layout.pack(tf.constant(padded)), layout.shards)]

    for previous, positions, examples in _run(build, num_shards):
        assert all(step == 0 for step, _ in positions[:examples])
        assert len(previous) == len(positions) - examples
        for (step, example), row in zip(positions[examples:], previous):
            np.testing.assert_array_equal(row, padded[step - 1, example])


def test_step_slices_cut_each_steps_rows_and_grow_by_the_examples_ending_there():
    # LENGTHS give counts [5, 4, 4, 2, 2, 1] at offsets [0, 5, 9, 13, 15, 17], 18 rows; after the
    # six steps comes an empty seventh for loops that advance two steps at a time.
    padded = _padded()

    def build(layout):
        slices = layout.shards[0].steps()
        packed = layout.pack(tf.constant(padded))[0]
        steps = [slices.at(t) for t in range(7)]
        next_counts = [4, 4, 2, 2, 1, 0, 0]
        return ([step.rows(packed) for step in steps],
                [step.grow(tf.ones([count, 2])) for step, count in zip(steps, next_counts)])

    rows, grown = _run(build)
    packed = _numpy_packed(padded)
    bounds = [0, 5, 9, 13, 15, 17, 18, 18]
    for t in range(7):
        np.testing.assert_array_equal(rows[t], packed[bounds[t]:bounds[t + 1]])
    # Growing step t + 1's rows to step t's adds zero rows for the examples whose last step is t.
    for t, (count, ending) in enumerate(zip([5, 4, 4, 2, 2, 1, 0], [1, 0, 2, 0, 1, 1, 0])):
        np.testing.assert_array_equal(grown[t], np.concatenate(
            [np.ones([count - ending, 2]), np.zeros([ending, 2])]))
