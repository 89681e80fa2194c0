"""Benchmarks: the project's LSTM against TensorFlow's fused kernel and a naive loop."""
