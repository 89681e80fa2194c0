"""Benchmarks: the project's LSTM against TensorFlow's fused kernel, the textbook LSTM
and PyTorch.

Like tests/, this folder lives in the checkout and is not installed with the package: a top-level
package named `benchmarks` in site-packages would clash with any other project's (setuptools'
package discovery reserves the name for that reason), and what it holds may not live in
lstm_mnist/ (fused RNN kernels, PyTorch). The tests import it through pytest.ini's
`pythonpath = .`, scripts/bench.py through the checkout line every script starts with, and the
PyTorch worker runs as `python -m benchmarks.torch_process` in the checkout.
"""
