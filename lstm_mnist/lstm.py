"""The LSTM stack the classifier reads: its variables, and which implementation runs them.

Two implementations compute the same numbers from the same variables, so a checkpoint trained by
either evaluates under the other:

- `textbook` (`textbook.py`): the lesson. A `tf.while_loop` over the padded batch, each
  example's last valid output gathered, TensorFlow's automatic differentiation for training.
  Read it first.
- `fast` (`packed_loops.py`, the default): the same cell on packed sequences, many LSTMs in one
  loop, and backpropagation through time written by hand. This file wires its chains: which
  LSTMs share a loop, how a batch is dealt into shards, where dropout masks go.

Both are built from `cell.py`: the cell equations, the weights and dropout.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

from lstm_mnist import textbook
from lstm_mnist.cell import (DIRECTIONS, LSTMState, LSTMWeights, StackOutput, create_lstm_weights,
                             dropout, dropout_mask, project_inputs)
from lstm_mnist.config import LSTM_IMPLEMENTATIONS
from lstm_mnist.packed_loops import Chain, run_chains
from lstm_mnist.packing import PackedLayout
from lstm_mnist.tf1 import tf

# LSTMs a loop should step side by side so that two cores (the machine this project is measured
# on) both have work at every step: a stack with fewer gets its batch dealt into shards.
PARALLEL_LSTMS = 2


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


class LSTMStack:
    """A deep, optionally bidirectional LSTM; its variables are created once, on construction,
    and read by either implementation.

    Variables are named `<name>/layer_<k>/<fw|bw>/{w_x,w_h,b}`: these names are the checkpoint
    format.
    """

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], bidirectional: bool = False,
                 name: str = "lstm", implementation: str = "fast",
                 num_shards: Optional[int] = None):
        """Args:
          input_size: features per step of the input sequence (28 pixels here).
          hidden_sizes: units of each layer, bottom first.
          bidirectional: add a backward LSTM to every layer; layer k+1 then reads both directions'
            outputs concatenated.
          name: variable scope.
          implementation: one of LSTM_IMPLEMENTATIONS, "fast" or "textbook".
          num_shards: for the fast implementation, how many shards each batch is dealt into
            (`packing.PackedLayout`); every shard runs its own chains in the same loops,
            independent work for the cores. By default, enough for PARALLEL_LSTMS LSTMs at once:
            2 for one unidirectional layer, else 1 (the layers of a deep stack already overlap,
            and the two directions of a bidirectional one). Dropout draws per shard; nothing else
            depends on it.
        """
        if implementation not in LSTM_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {LSTM_IMPLEMENTATIONS}, "
                             f"got {implementation!r}")
        self.implementation = implementation
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
          inputs: float32 `[time, batch, input_size]`, time-major; anything past each length.
          lengths: int32 `[batch]`, valid steps per example, each in 1..time.
          dropout_rate: drop probability on the input of every layer (Zaremba et al. 2014: never on
            the recurrent connection); a float, or a scalar tensor fed 0 at evaluation.

        Returns:
          A StackOutput.
        """
        if self.implementation == "textbook":
            output, _ = textbook.run_stack(self.layers, inputs, lengths, dropout_rate)
            return output
        layout = PackedLayout.from_lengths(lengths, self.num_shards)
        inputs = [dropout(shard_inputs, dropout_rate) for shard_inputs in layout.pack(inputs)]
        # Every mask is drawn up front, from the packed shapes, so no layer waits for its random
        # numbers: masks[layer][direction][shard].
        masks = [[[dropout_mask([shard.num_rows, w.hidden_size], dropout_rate)
                   for shard in layout.shards] for w in layer] for layer in self.layers[:-1]]
        run = self._bidirectional if self.bidirectional else self._unidirectional
        return run(inputs, layout, masks)

    def trace(self, inputs: tf.Tensor,
              lengths: tf.Tensor) -> Tuple[Tuple[Tuple[LSTMTrace, ...], ...], tf.Tensor]:
        """The gates, cells and outputs of every LSTM at every step, for inference (no dropout, no
        gradient), whichever implementation trains: the textbook loop keeps every step's values.

        Args:
          inputs: float32 `[time, batch, input_size]`, time-major, as for `__call__`.
          lengths: int32 `[batch]`, valid steps per example.

        Returns:
          `trace[layer][direction]`, an LSTMTrace in time order: for the backward direction, step
          t holds its values after reading steps `lengths - 1` down to t, so its output at step 0
          is the one `__call__` classifies; and that `last_output` (as StackOutput's).
        """
        output, histories = textbook.run_stack(self.layers, inputs, lengths)
        traces = tuple(tuple(LSTMTrace(h.activations.input_gate, h.activations.forget_gate,
                                       h.activations.output_gate, h.states.c, h.states.h)
                             for h in layer) for layer in histories)
        return traces, output.last_output

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


def _chain(inputs: tf.Tensor, layers: Sequence[LSTMWeights], dropout_masks=None) -> Chain:
    """The Chain of `layers` reading packed `inputs`, projected for the first LSTM."""
    return Chain(project_inputs(inputs, layers[0].w_x, layers[0].b), layers, dropout_masks)
