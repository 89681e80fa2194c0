"""Packed sequences: a batch of variable-length sequences stored without its padding.

A padded batch `[time, batch, size]` wastes the rows past each example's length: random crops of
24..28 pixels give 21..28 steps, ~12% padding in batches padded to 28 steps. Packed, the batch is
sorted by length, longest first, and only the valid `(step, example)` rows are kept, step by step:

    packed rows = [step 0: examples 0..counts[0]-1] [step 1: examples 0..counts[1]-1] ...

Because the examples still running at step t are always the first `counts[t]` (sorted order), step
t's rows are one contiguous slice `packed[offsets[t] : offsets[t] + counts[t]]`, and a recurrent
state for step t is the first `counts[t]` rows of the state for step t-1. Every matrix product then
works on valid rows only. (PyTorch's `PackedSequence` stores sequences the same way.)

A batch can also be dealt into shards, each packed on its own the same way: a time loop then steps
the shards' LSTMs side by side, work for a second core when the model alone has one LSTM per step.

A loop over packed steps carries states whose row count shrinks from step to step: `step_array`,
`any_rows` and `zero_rows` make the TensorArrays and loop states that allow it.
"""

from typing import List, NamedTuple, Sequence, Tuple

from lstm_mnist.tf1 import tf


class Shard(NamedTuple):
    """Where each `(step, example)` of a shard of a padded batch lives in the shard's packed form.

    Attributes:
      counts: int32 `[steps]`, how many of the shard's examples are still running at each step,
        non-increasing; `steps` is the batch's longest length (a count may be 0).
      offsets: int32 `[steps]`, the first packed row of each step.
      padded_positions: int32 `[rows, 2]`, the `(step, example)` in the padded batch of each packed
        row.
      reversed_rows: int32 `[rows]`, for the packed row of `(t, example)` the packed row of
        `(length - 1 - t, example)`.
      last_rows: int32 `[examples]`, the packed row of each example's last valid step, longest
        example first.
      previous_rows: int32 `[rows - examples]`, for each packed row of `(t, example)` after the
        first step's (t >= 1), the packed row of `(t - 1, example)`: where the state step t
        started from is.
    """

    counts: tf.Tensor
    offsets: tf.Tensor
    padded_positions: tf.Tensor
    reversed_rows: tf.Tensor
    last_rows: tf.Tensor
    previous_rows: tf.Tensor

    @classmethod
    def of(cls, lengths: tf.Tensor, examples: tf.Tensor, steps: tf.Tensor) -> "Shard":
        """The shard of `examples` (int32 indices into the batch, longest first) of a batch with
        these `lengths`, over `steps` steps."""
        sorted_lengths = tf.gather(lengths, examples)
        valid = tf.range(steps)[:, None] < sorted_lengths[None, :]
        counts = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        offsets = tf.cumsum(counts, exclusive=True)
        # tf.where lists the true positions of `valid` row-major: step by step, examples in sorted
        # order, i.e. exactly the packed order.
        step, rank = tf.unstack(tf.cast(tf.where(valid), tf.int32), axis=1)
        source_step = tf.gather(sorted_lengths, rank) - 1 - step
        later = tf.size(examples)  # every example has a first step: its rows come first
        return cls(counts=counts, offsets=offsets,
                   padded_positions=tf.stack([step, tf.gather(examples, rank)], axis=1),
                   reversed_rows=tf.gather(offsets, source_step) + rank,
                   last_rows=tf.gather(offsets, sorted_lengths - 1) + tf.range(tf.size(examples)),
                   previous_rows=tf.gather(offsets, step[later:] - 1) + rank[later:])

    @property
    def batch_size(self) -> tf.Tensor:
        return tf.shape(self.last_rows)[0]

    @property
    def num_rows(self) -> tf.Tensor:
        return tf.shape(self.padded_positions)[0]

    def steps(self) -> "StepSlices":
        """Per-step slicing arguments, built once outside a time loop (inside it, each step then
        reads them with one op instead of assembling them from `counts` and `offsets`), for the
        shard's steps and one empty step after them (see StepSlices)."""
        no_rows = tf.zeros([1], tf.int32)
        counts = tf.concat([self.counts, no_rows], axis=0)
        offsets = tf.concat([self.offsets, self.num_rows[None]], axis=0)
        zeros = tf.zeros_like(counts)
        next_counts = tf.concat([counts[1:], no_rows], axis=0)
        return StepSlices(begins=tf.stack([offsets, zeros], axis=1),
                          sizes=tf.stack([counts, zeros - 1], axis=1),
                          new_rows=tf.stack([tf.stack([zeros, counts - next_counts], axis=1),
                                             tf.stack([zeros, zeros], axis=1)], axis=1))


class PackedLayout(NamedTuple):
    """A padded batch packed in shards: its examples sorted by length, longest first, dealt out
    like cards (shard k gets sorted ranks k, k + n, k + 2n, ... of n shards), so the shards are
    alike in size and lengths. A packed batch is a list of `[rows, size]` tensors, one per shard.

    Attributes:
      shards: the Shards.
      rank: int32 `[batch]`, each example's place in the shards' examples concatenated.
      steps: int32 scalar, the longest length.
    """

    shards: Tuple[Shard, ...]
    rank: tf.Tensor
    steps: tf.Tensor

    @classmethod
    def from_lengths(cls, lengths: tf.Tensor, num_shards: int = 1) -> "PackedLayout":
        """The layout of a batch with these valid lengths (int32 `[batch]`, each >= 1)."""
        order = tf.argsort(lengths, direction="DESCENDING", stable=True)
        steps = tf.reduce_max(lengths)
        examples = [order[k::num_shards] for k in range(num_shards)]
        return cls(tuple(Shard.of(lengths, e, steps) for e in examples),
                   rank=tf.math.invert_permutation(tf.concat(examples, axis=0)), steps=steps)

    def pack(self, padded: tf.Tensor) -> List[tf.Tensor]:
        """`[time, batch, size]` (time >= the longest length) -> per shard `[rows, size]`."""
        return [tf.gather_nd(padded, shard.padded_positions) for shard in self.shards]

    def unpack(self, packed: Sequence[tf.Tensor]) -> tf.Tensor:
        """Per shard `[rows, size]` -> `[steps, batch, size]`, zeros past each example's length."""
        shape = tf.stack([self.steps, tf.size(self.rank), tf.shape(packed[0])[1]])
        return tf.scatter_nd(_concat([shard.padded_positions for shard in self.shards]),
                             _concat(packed), shape)

    def last(self, packed: Sequence[tf.Tensor]) -> tf.Tensor:
        """Per shard `[rows, size]` -> `[batch, size]`, each example's row at its last valid step,
        in the original example order."""
        rows = _concat([tf.gather(part, shard.last_rows)
                        for part, shard in zip(packed, self.shards)])
        return tf.gather(rows, self.rank)

    def reverse(self, packed: Sequence[tf.Tensor]) -> List[tf.Tensor]:
        """Reverses each example's sequence: the row of `(t, example)` gets the row of
        `(length - 1 - t, example)`. Padding never moves, so a packed batch stays packed."""
        return [_permute_rows(part, shard.reversed_rows)
                for part, shard in zip(packed, self.shards)]


def step_array(size: tf.Tensor, width: int) -> tf.TensorArray:
    """A TensorArray of one `[rows, width]` entry per step, whose row counts differ from step to
    step, readable more than once."""
    return tf.TensorArray(tf.float32, size=size, infer_shape=False, clear_after_read=False,
                          element_shape=tf.TensorShape([None, width]))


def any_rows(tensor: tf.Tensor, width: int) -> tf.Tensor:
    """`tensor` `[rows, width]` with the static shape `[None, width]`: a loop state whose row count
    changes from step to step must not start with a fixed one (a constant batch would give it
    one), and placeholder_with_default relaxes it."""
    return tf.placeholder_with_default(tensor, [None, width])


def zero_rows(rows: tf.Tensor, width: int) -> tf.Tensor:
    """`[rows, width]` zeros with the static shape `[None, width]` (see `any_rows`)."""
    return any_rows(tf.zeros([rows, width]), width)


def _concat(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    return tensors[0] if len(tensors) == 1 else tf.concat(list(tensors), axis=0)


class StepSlices(NamedTuple):
    """Slicing arguments for every step t: `begins[t] = [offsets[t], 0]`, `sizes[t] = [counts[t],
    -1]`, and `new_rows[t]` the `tf.pad` paddings that grow a `[counts[t+1], size]` tensor to
    `[counts[t], size]` (examples whose last step is t; after the last step, no example runs).

    Step `steps` is there too, with no rows: a loop that advances two steps at a time runs it
    when the count of steps it has to cover is odd, and computes nothing in it."""

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
