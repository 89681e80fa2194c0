"""A reference LSTM stack with the same variables as `lstm_mnist.lstm.LSTMStack`, on TensorFlow's
fused `BlockLSTM` kernel, which `lstm_mnist/` must not use: it exists only to be measured and
checked against. Like the textbook stack it runs layer by layer, one kernel call per layer and
direction, and reverses sequences for the backward direction with `tf.reverse_sequence`, as
TensorFlow's own `bidirectional_dynamic_rnn` does.
"""

from lstm_mnist.cell import StackOutput, dropout
from lstm_mnist.lstm import LSTMStack
from lstm_mnist.textbook import last_valid, reverse_valid
from lstm_mnist.tf1 import tf


class BlockLSTMStack(LSTMStack):
    """An LSTMStack whose every LSTM is TensorFlow's fused `BlockLSTM` kernel (`block_lstm`)."""

    def __call__(self, inputs, lengths, dropout_rate=0.0):
        for index, directions in enumerate(self.layers):
            inputs = dropout(inputs if index == 0 else outputs, dropout_rate)
            forward = block_lstm(directions[0], inputs).h
            outputs, last = forward, last_valid(forward, lengths)
            if self.bidirectional:
                backward = block_lstm(directions[1], reverse_valid(inputs, lengths)).h
                outputs = tf.concat([forward, reverse_valid(backward, lengths)], axis=2)
                last = tf.concat([last, last_valid(backward, lengths)], axis=1)
        return StackOutput(outputs, last, final_states=())


def _to_block_order(matrix):
    """Our gate columns (input, forget, output, candidate) in BlockLSTM's order (i, g, f, o)."""
    i, f, o, g = tf.split(matrix, 4, axis=-1)
    return tf.concat([i, g, f, o], axis=-1)


def block_lstm(weights, inputs):
    """TensorFlow's fused `BlockLSTM` kernel (no peepholes, no cell clipping) with our weights.

    Args:
      weights: an `lstm_mnist.cell.LSTMWeights`.
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

