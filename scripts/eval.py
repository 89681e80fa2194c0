"""Measure a trained model on the full validation and test sets.

    python scripts/eval.py --checkpoint checkpoints/part1 [--json] [--report DIR]
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="eval.py", description="Rebuild a model from its checkpoint folder's config.json, "
        "restore it and report loss, error and accuracy on the 5000 validation and 10000 test "
        "images (and on fixed crops for models trained with --crop).")
    cli.add_checkpoint_argument(parser)
    cli.add_lstm_argument(parser)
    cli.add_data_dir_argument(parser)
    parser.add_argument("--crop-seed", type=int,
                        help="seed of the evaluation crops (default: the one the run used)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--report", metavar="DIR",
                        help="also write the test set's confusion_matrix.csv, confusion_matrix.png "
                             "and worst_errors.png (its most confident mistakes) into DIR, and "
                             "test-N.explain.png pictures of how the model read its 3 most "
                             "confident mistakes (see explain.py)")
    args = parser.parse_args(argv)
    from lstm_mnist.evaluate import evaluate_checkpoint  # imports TensorFlow: flags first
    results = evaluate_checkpoint(args.checkpoint, args.data_dir, args.crop_seed, args.report,
                                  args.lstm)
    if args.json:
        print(json.dumps(results, sort_keys=True))
        return
    print(f"checkpoint {results['checkpoint']}")
    for split in ("validation", "test"):
        for suffix, what in (("", "full images"), ("_cropped", "cropped images")):
            if f"{split}_loss{suffix}" in results:
                print(f"{split:10s} {what:14s} loss {results[f'{split}_loss{suffix}']:.4f}  "
                      f"error {100 * results[f'{split}_error{suffix}']:.2f}%  "
                      f"accuracy {100 * results[f'{split}_accuracy{suffix}']:.2f}%")
    if args.report:
        print(f"test report written to {args.report}")


if __name__ == "__main__":
    cli.run(main, "eval.py")
