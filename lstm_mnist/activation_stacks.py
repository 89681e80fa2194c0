"""How the fast LSTM's forward loop hands each step's gate activations to its backward loop: on
stacks, pushed step after step and popped last step first.

A TensorArray would keep them as well, but it is a loop variable: its flow passes through four
loop-control ops (Merge, Switch, Identity, NextIteration) at every step. A stack is a resource the
loops only refer to (TensorFlow's own gradient of a while loop keeps its values this way), so the
order of pushes and pops is not given by data: control dependencies give it.
"""

from lstm_mnist.cell import GateActivations
from lstm_mnist.tf1 import tf


def new_stacks() -> GateActivations:
    """A stack per saved activation (a GateActivations of stack handles): the forward loop pushes
    each step's activations, the backward loop pops them, last step first."""
    return GateActivations(*(tf.raw_ops.StackV2(max_size=-1, elem_type=tf.float32)
                             for _ in GateActivations._fields))


def push(stacks: GateActivations, activations: GateActivations, after: tf.Tensor) -> tf.Tensor:
    """Pushes one step's activations once `after` (the previous step's pushes) is done; returns
    a scalar that depends on these pushes."""
    with tf.control_dependencies([after]):
        pushes = [tf.raw_ops.StackPushV2(handle=stack, elem=value)
                  for stack, value in zip(stacks, activations)]
    with tf.control_dependencies(pushes):
        return tf.identity(after)


def pop(stacks: GateActivations, width: int, after: tf.Tensor) -> GateActivations:
    """Pops one step's activations, `[rows, width]` each, once `after` is computed."""
    with tf.control_dependencies([after]):
        activations = [tf.raw_ops.StackPopV2(handle=stack, elem_type=tf.float32)
                       for stack in stacks]
    for activation in activations:
        activation.set_shape([None, width])
    return GateActivations(*activations)
