"""Packed sequences: a batch of variable-length sequences stored without its padding.

A padded batch `[time, batch, size]` wastes the rows past each example's length: random crops of
24..28 pixels give 21..28 steps, ~12% padding in batches padded to 28 steps. Packed, the batch is
sorted by length, longest first, and only the valid `(step, example)` rows are kept, step by step:

    packed rows = [step 0: examples 0..counts[0]-1] [step 1: examples 0..counts[1]-1] ...

Because the examples still running at step t are always the first `counts[t]` (sorted order), step
t's rows are one contiguous slice `packed[offsets[t] : offsets[t] + counts[t]]`, and a recurrent
state for step t is the first `counts[t]` rows of the state for step t-1. Every matrix product then
works on valid rows only. (PyTorch's `PackedSequence` stores sequences the same way.)
"""

from typing import NamedTuple

from lstm_mnist.tf1 import tf


class PackedLayout(NamedTuple):
    """Where each `(step, example)` of a padded batch lives in its packed form.

    Attributes:
      order: int32 `[batch]`, example indices sorted by length, longest first (ties keep their
        order); packed rows and the recurrent state follow this order.
      rank: int32 `[batch]`, each example's place in `order` (its inverse permutation).
      counts: int32 `[steps]`, how many examples are still running at each step, non-increasing;
        `steps` is the longest length.
      offsets: int32 `[steps]`, the first packed row of each step.
      padded_positions: int32 `[rows, 2]`, the `(step, example)` in the padded batch of each packed
        row.
      reversed_rows: int32 `[rows]`, for the packed row of `(t, example)` the packed row of
        `(length - 1 - t, example)`.
      lengths: int32 `[batch]`, the examples' lengths in the original order.
    """

    order: tf.Tensor
    rank: tf.Tensor
    counts: tf.Tensor
    offsets: tf.Tensor
    padded_positions: tf.Tensor
    reversed_rows: tf.Tensor
    lengths: tf.Tensor

    @classmethod
    def from_lengths(cls, lengths: tf.Tensor) -> "PackedLayout":
        """The layout of a batch with these valid lengths (int32 `[batch]`, each >= 1)."""
        order = tf.argsort(lengths, direction="DESCENDING", stable=True)
        sorted_lengths = tf.gather(lengths, order)
        valid = tf.range(tf.reduce_max(lengths))[:, None] < sorted_lengths[None, :]
        counts = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        # tf.where lists the true positions of `valid` row-major: step by step, examples in sorted
        # order, i.e. exactly the packed order.
        step, row_rank = tf.unstack(tf.cast(tf.where(valid), tf.int32), axis=1)
        offsets = tf.cumsum(counts, exclusive=True)
        source_step = tf.gather(sorted_lengths, row_rank) - 1 - step
        return cls(order=order, rank=tf.math.invert_permutation(order), counts=counts,
                   offsets=offsets,
                   padded_positions=tf.stack([step, tf.gather(order, row_rank)], axis=1),
                   reversed_rows=tf.gather(offsets, source_step) + row_rank, lengths=lengths)

    @property
    def batch_size(self) -> tf.Tensor:
        return tf.shape(self.order)[0]

    @property
    def num_rows(self) -> tf.Tensor:
        return tf.shape(self.padded_positions)[0]

    def pack(self, padded: tf.Tensor) -> tf.Tensor:
        """`[time, batch, size]` (time >= the longest length) -> `[rows, size]`."""
        return tf.gather_nd(padded, self.padded_positions)

    def unpack(self, packed: tf.Tensor) -> tf.Tensor:
        """`[rows, size]` -> `[steps, batch, size]`, zeros past each example's length."""
        shape = tf.stack([tf.shape(self.counts)[0], self.batch_size, tf.shape(packed)[1]])
        return tf.scatter_nd(self.padded_positions, packed, shape)

    def last(self, packed: tf.Tensor) -> tf.Tensor:
        """`[rows, size]` -> `[batch, size]`, each example's row at its last valid step, in the
        original example order."""
        return tf.gather(packed, tf.gather(self.offsets, self.lengths - 1) + self.rank)

    def reverse(self, packed: tf.Tensor) -> tf.Tensor:
        """Reverses each example's sequence: the row of `(t, example)` gets the row of
        `(length - 1 - t, example)`. Padding never moves, so a packed batch stays packed."""
        return _permute_rows(packed, self.reversed_rows)

    def steps(self) -> "StepSlices":
        """Per-step slicing arguments, built once outside a time loop (inside it, each step then
        reads them with one op instead of assembling them from `counts` and `offsets`)."""
        zeros = tf.zeros_like(self.counts)
        next_counts = tf.concat([self.counts[1:], self.counts[-1:]], axis=0)
        return StepSlices(begins=tf.stack([self.offsets, zeros], axis=1),
                          sizes=tf.stack([self.counts, zeros - 1], axis=1),
                          new_rows=tf.stack([tf.stack([zeros, self.counts - next_counts], axis=1),
                                             tf.stack([zeros, zeros], axis=1)], axis=1))


class StepSlices(NamedTuple):
    """Slicing arguments for every step t: `begins[t] = [offsets[t], 0]`, `sizes[t] = [counts[t],
    -1]`, and `new_rows[t]` the `tf.pad` paddings that grow a `[counts[t+1], size]` tensor to
    `[counts[t], size]` (examples whose last step is t)."""

    begins: tf.Tensor
    sizes: tf.Tensor
    new_rows: tf.Tensor

    def at(self, step: tf.Tensor) -> "Step":
        return Step(self.begins[step], self.sizes[step], self.new_rows[step])


class Step(NamedTuple):
    """The slicing arguments of one step; see StepSlices."""

    begin: tf.Tensor
    size: tf.Tensor
    new_rows: tf.Tensor

    def rows(self, packed: tf.Tensor) -> tf.Tensor:
        """The step's rows `[counts[t], size]` of a packed tensor: contiguous rows, no copy."""
        return tf.slice(packed, self.begin, self.size)

    def running(self, state: tf.Tensor) -> tf.Tensor:
        """The first `counts[t]` rows of a state: the examples still running at step t."""
        return tf.slice(state, [0, 0], self.size)

    def grow(self, tensor: tf.Tensor) -> tf.Tensor:
        """`[counts[t+1], size]` -> `[counts[t], size]` with zero rows for examples ending at t."""
        return tf.pad(tensor, self.new_rows)


@tf.custom_gradient
def _permute_rows(packed, rows):
    """`packed` with its rows reordered by `rows`, an involution (applying it twice restores the
    order), so its gradient is the same reordering. One gather of whole rows."""
    return tf.gather(packed, rows), lambda d_permuted: (tf.gather(d_permuted, rows), None)
