"""Benchmark a training step of our LSTM against TensorFlow's fused BlockLSTM and a naive loop.

    python scripts/bench.py                       # all configs, table
    python scripts/bench.py --seconds 0.2 --json  # quick, machine-readable
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402
from benchmarks.bench import CONFIGS, benchmark  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="bench.py", description="Examples per second of a full training step (batch "
        "preparation, forward, backward, Adam) and of inference, for our LSTM, TensorFlow's "
        "fused BlockLSTM and a naive loop, interleaved in one process; medians over repeats.")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated subset of: " + ", ".join(CONFIGS))
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="time per measurement (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="measurements per implementation and mode (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    if args.seconds < 0 or args.repeats < 1:
        parser.error("--seconds must be >= 0 and --repeats >= 1")
    results = benchmark(names, args.seconds, args.repeats)
    if args.json:
        print(json.dumps(results, sort_keys=True))
        return
    print("| config | ours ex/s | BlockLSTM ex/s | naive ex/s | ours/BlockLSTM | ours/naive "
          "| inference ours/BlockLSTM | input share | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["configs"]:
        print(f"| {r['name']} | {r['ours_examples_per_s']:.0f} | {r['blocklstm_examples_per_s']:.0f}"
              f" | {r['naive_examples_per_s']:.0f} | {r['ratio_vs_blocklstm']:.2f}x"
              f" | {r['ratio_vs_naive']:.2f}x | {r['inference_ratio_vs_blocklstm']:.2f}x"
              f" | {100 * r['input_share']:.1f}% | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    cli.run(main, "bench.py")
