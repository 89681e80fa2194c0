"""lstm_mnist: a hand-written LSTM, in TensorFlow 1 graph mode, that reads MNIST digits row by row.

Modules, one idea each, in the order the arrows point (each imports only modules listed before it):

- `errors` (the one-line error type), `files` (atomic writes, CSV and JSON), `sequences` (images
  to padded pixel sequences, random crops), `config` (hyperparameters), `memory` (whether a
  config's model fits, judged before it is built), `data` (MNIST IDX files), `runs` (a run's
  folders: names, identity, lock, checks), `figures` (matplotlib figures), `plots` (learning
  curves), `explain_figure` (how a model read a digit, drawn), `images` (image files to MNIST's
  form), `cli` (what the scripts share): no TensorFlow.
- `tf1` (TensorFlow's TF1 API, imported quietly, and the session settings), `cell` (the LSTM
  cell: weights, one step forward and backward, dropout), `textbook` (the textbook LSTM: a padded
  while_loop, autodiff, and backprop through time by hand; read it first), `packing` (packed
  variable-length batches), `activation_stacks` (how the fast LSTM's forward loop hands its
  activations to the backward loop), `packed_loops` (the fast LSTM's time loops and hand-written
  gradient), `lstm` (the stack: variables, and which implementation runs), `model` (the
  classifier graph), `passes` (one pass over minibatches: a training epoch or a measurement),
  `checkpoints` (finding and restoring them inside the folder given), `report` (confusion matrix
  and worst errors), `explain` (a model's gates, cells and probabilities after every step),
  `evaluate` (a checkpoint measured on validation and test), `predict` (classifying and
  explaining image files), `dashboard` (what TensorBoard shows beyond curves: the HParams
  session, pictures, histograms, the config), `monitor` (log lines, TensorBoard streams,
  progress bar, divergence checks), `lifecycle` (stop signals and one-line failures around a
  run), `run_records` (reading back what a run wrote, to continue it), `trainer` (the epoch
  loop).

Importing the package, or a module that does not build graphs (config, memory, data, sequences,
runs, files, plots, explain_figure, images, figures, cli), does not import TensorFlow.
"""
