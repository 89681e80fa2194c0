"""lstm_mnist: a hand-written LSTM, in TensorFlow 1 graph mode, that reads MNIST digits row by row.

Modules, one idea each: `config` (hyperparameters), `data` (MNIST IDX files), `sequences` (images
to padded pixel sequences, random crops), `tf1` (TensorFlow's TF1 API, imported quietly), `lstm`
(the LSTM and its time loop), `packing` (packed variable-length batches), `model` (the classifier
graph), `trainer` (the training loop), `evaluate` (measuring and checkpoints), `runs` and `files`
(a run's files, written atomically), `plots` (learning curves), `images` (image files to MNIST's
form), `predict` (classifying image files), `report` (confusion matrix and worst errors),
`figures` (matplotlib figures), `cli` (what the scripts share).

Importing the package, or a module that does not build graphs (config, data, sequences, runs,
files, plots, images, figures, cli), does not import TensorFlow.
"""
