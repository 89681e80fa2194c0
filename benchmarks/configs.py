"""The configurations the benchmark measures: the reference runs' models (no TensorFlow here, so
`scripts/bench.py --help` answers at once), all at batch 128, the batch of every comparison in
docs/performance.md (the Part 1 and Part 2 recipes train at 256)."""

from lstm_mnist.config import Config

BATCH_SIZE = 128

CONFIGS = {
    "part1": Config(batch_size=BATCH_SIZE),
    "part2": Config(layers=2, hidden=(128, 128), crop=True, batch_size=BATCH_SIZE),
    "part2-bidir": Config(layers=2, hidden=(128, 128), crop=True, bidirectional=True,
                          batch_size=BATCH_SIZE),
}
