"""lstm_mnist: a hand-written LSTM, in TensorFlow 1 graph mode, that reads MNIST digits row by row.

Modules, one idea each: `config` (hyperparameters), `data` (MNIST IDX files), `sequences` (images
to padded pixel sequences, random crops), `lstm` (the LSTM and its time loop), `model` (the
classifier graph), `trainer` (the training loop), `evaluate` (measuring and checkpoints), `plots`
(learning curves), `predict` (classifying image files), `report` (confusion matrix and worst
errors), `cli` (what the scripts share).
"""

import tensorflow.compat.v1 as tf

# Graph mode with TF1 semantics: placeholders, sessions and v1 while loops (whose iterations the
# executor can overlap, see lstm.py).
tf.disable_v2_behavior()
