"""Reference LSTM stacks with the same variables as `lstm_mnist.lstm.LSTMStack`.

They may use what `lstm_mnist/` must not (TensorFlow's fused `BlockLSTM` kernel) and exist only to
be measured against and checked against. Both run layer by layer, one loop per layer and
direction, the way such stacks are usually built, and reverse sequences for the backward direction
with `tf.reverse_sequence`, as TensorFlow's own `bidirectional_dynamic_rnn` does (ours,
`packing.PackedLayout.reverse`, is a faster row gather: part of what is measured).
"""


from lstm_mnist.lstm import LSTMStack, StackOutput, dropout
from lstm_mnist.tf1 import tf


class _LayerByLayerStack(LSTMStack):
    """An LSTMStack whose layers each run through `run_layer` over the whole sequence."""

    def run_layer(self, weights, inputs):
        """`[time, batch, input]` -> `[time, batch, hidden]` outputs of one LSTM from a zero state."""
        raise NotImplementedError

    def __call__(self, inputs, lengths, dropout_rate=0.0):
        for index, directions in enumerate(self.layers):
            inputs = dropout(inputs if index == 0 else outputs, dropout_rate)
            forward = self.run_layer(directions[0], inputs)
            outputs, last = forward, last_valid(forward, lengths)
            if self.bidirectional:
                backward = self.run_layer(directions[1], _reverse_valid(inputs, lengths))
                outputs = tf.concat([forward, _reverse_valid(backward, lengths)], axis=2)
                last = tf.concat([last, last_valid(backward, lengths)], axis=1)
        return StackOutput(outputs, last, final_states=())


def last_valid(outputs, lengths):
    """`[batch, size]`: `outputs[lengths[b] - 1, b]` of time-major `outputs [time, batch, size]`."""
    batch_index = tf.range(tf.shape(lengths)[0], dtype=lengths.dtype)
    return tf.gather_nd(outputs, tf.stack([lengths - 1, batch_index], axis=1))


def _reverse_valid(sequences, lengths):
    """Reverses the first `lengths[b]` steps of each time-major sequence, the TensorFlow way."""
    return tf.reverse_sequence(sequences, lengths, seq_axis=0, batch_axis=1)


def _to_block_order(matrix):
    """Our gate columns (input, forget, output, candidate) in BlockLSTM's order (i, g, f, o)."""
    i, f, o, g = tf.split(matrix, 4, axis=-1)
    return tf.concat([i, g, f, o], axis=-1)


def block_lstm(weights, inputs):
    """TensorFlow's fused `BlockLSTM` kernel (no peepholes, no cell clipping) with our weights.

    Args:
      weights: an `lstm_mnist.lstm.LSTMWeights`.
      inputs: `[time, batch, input]`, read from a zero state.

    Returns:
      BlockLSTM's outputs: `.h` (outputs) and `.cs` (cells), each `[time, batch, hidden]`, etc.
    """
    batch, hidden = tf.shape(inputs)[1], weights.hidden_size
    zero_state, zero_peephole = tf.zeros([batch, hidden]), tf.zeros([hidden])
    return tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, cs_prev=zero_state,
        h_prev=zero_state, w=_to_block_order(tf.concat([weights.w_x, weights.w_h], axis=0)),
        wci=zero_peephole, wcf=zero_peephole, wco=zero_peephole,
        b=_to_block_order(weights.b), forget_bias=0.0, cell_clip=-1.0, use_peephole=False)


class BlockLSTMStack(_LayerByLayerStack):
    """Each layer is TensorFlow's fused `BlockLSTM` kernel (`block_lstm`)."""

    def run_layer(self, weights, inputs):
        return block_lstm(weights, inputs).h


class NaiveLoopStack(_LayerByLayerStack):
    """The textbook loop: every step concatenates `[x_t, h]` and does one matmul inside the loop."""

    def run_layer(self, weights, inputs):
        time_steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
        hidden = weights.hidden_size
        w = tf.concat([weights.w_x, weights.w_h], axis=0)
        inputs_ta = tf.TensorArray(tf.float32, size=time_steps).unstack(inputs)

        def body(t, h, c, outputs):
            gates = tf.matmul(tf.concat([inputs_ta.read(t), h], axis=1), w) + weights.b
            i, f, o, g = tf.split(gates, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            return t + 1, h, c, outputs.write(t, h)

        zeros = tf.zeros([batch, hidden])
        _, _, _, outputs = tf.while_loop(lambda t, *_: t < time_steps, body,
                                         (0, zeros, zeros, tf.TensorArray(tf.float32, time_steps)))
        return outputs.stack()
