"""Classify digits in ordinary image files with a trained model.

    python scripts/predict.py --checkpoint checkpoints/part1 digit.png [more.jpg ...] [--json]
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="predict.py", description="Print the predicted digit and the 10 class probabilities "
        "of each image. Any size, greyscale or colour, dark ink on light paper or light on dark "
        "works: each image is cropped to its ink, scaled and centred the way MNIST was made. An "
        "unreadable or empty image is reported on stderr and the others are still predicted; the "
        "exit status is then 1.")
    parser.add_argument("--checkpoint", required=True,
                        help="a run's checkpoint folder (uses its best checkpoint) or one "
                             "checkpoint prefix such as checkpoints/part1/best/model-30")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per image and line: file, digit, "
                             "probabilities")
    args = parser.parse_args(argv)
    from lstm_mnist.predict import Classifier, predict_files  # imports TensorFlow: flags first
    with Classifier(args.checkpoint) as classifier:
        predictions, errors = predict_files(classifier, args.images)
    for error in errors:
        cli.print_error("predict.py", error)
    for prediction in predictions:
        print(json.dumps(prediction.to_dict()) if args.json else prediction.describe())
    return 1 if errors else 0


if __name__ == "__main__":
    cli.run(main, "predict.py")
