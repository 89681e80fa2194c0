"""The configurations the benchmark measures: the reference runs' models (no TensorFlow here, so
`scripts/bench.py --help` answers at once)."""

from lstm_mnist.config import Config

CONFIGS = {
    "part1": Config(),
    "part2": Config(layers=2, hidden=(128, 128), crop=True),
    "part2-bidir": Config(layers=2, hidden=(128, 128), crop=True, bidirectional=True),
}
