"""Benchmark a training step of our LSTM against TensorFlow's fused BlockLSTM, the textbook LSTM
and (when torch is installed: the `bench` extra) PyTorch's nn.LSTM.

    python scripts/bench.py                       # all configs, table
    python scripts/bench.py --seconds 0.2 --json  # quick, machine-readable
"""

import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402
from benchmarks.configs import CONFIGS  # noqa: E402

COLUMNS = [  # header, key of a config's result, format
    ("config", "name", "{}"),
    ("ours ex/s", "ours_examples_per_s", "{:.0f}"),
    ("BlockLSTM ex/s", "blocklstm_examples_per_s", "{:.0f}"),
    ("textbook ex/s", "textbook_examples_per_s", "{:.0f}"),
    ("PyTorch ex/s", "torch_examples_per_s", "{:.0f}"),
    ("ours/BlockLSTM", "ratio_vs_blocklstm", "{:.2f}x"),
    ("ours/textbook", "ratio_vs_textbook", "{:.2f}x"),
    ("ours/PyTorch", "ratio_vs_torch", "{:.2f}x"),
    ("inference ours/BlockLSTM", "inference_ratio_vs_blocklstm", "{:.2f}x"),
    ("input share", "input_share", "{:.1%}"),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
]


def main(argv):
    parser = cli.ArgumentParser(
        prog="bench.py", description="Examples per second of a full training step (batch "
        "preparation, forward, backward, Adam) and of inference, for our LSTM, TensorFlow's "
        "fused BlockLSTM, the textbook LSTM (--lstm textbook) and, when torch is installed, "
        "the same classifier on PyTorch's nn.LSTM (in a process of its own, as many threads as "
        "TensorFlow uses cores), taking turns; medians over repeats.")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated subset of: " + ", ".join(CONFIGS))
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="time per measurement (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="measurements per implementation and mode (default %(default)s)")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave out the PyTorch reference even if torch is installed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    if not 0 <= args.seconds < math.inf or args.repeats < 1:  # nan fails every comparison
        parser.error("--seconds must be a finite number >= 0 and --repeats >= 1")
    from benchmarks.bench import benchmark  # TensorFlow loads only once the flags are checked
    results = benchmark(names, args.seconds, args.repeats, with_torch=not args.no_torch)
    if "torch_skipped" in results:
        print(f"bench.py: PyTorch reference skipped: {results['torch_skipped']}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, sort_keys=True))
        return
    # Only the columns the results have: the PyTorch ones when torch took part.
    columns = [(header, key, form) for header, key, form in COLUMNS
               if key in results["configs"][0]]
    print("| " + " | ".join(header for header, _, _ in columns) + " |")
    print("|---" * len(columns) + "|")
    for result in results["configs"]:
        print("| " + " | ".join(form.format(result[key]) for _, key, form in columns) + " |")
    if "torch" in results:
        info = results["torch"]
        print(f"PyTorch {info['torch_version']} in its own process: {info['threads']} threads, "
              f"OMP_WAIT_POLICY={info['omp_wait_policy']}.")


if __name__ == "__main__":
    cli.run(main, "bench.py")
