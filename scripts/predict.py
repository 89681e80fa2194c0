"""Classify digits in ordinary image files with a trained model.

    python scripts/predict.py --checkpoint checkpoints/part1 digit.png [more.jpg ...] [--json]
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402
from lstm_mnist.images import MAX_PIXELS, ImageError  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="predict.py", description="Print the predicted digit and the 10 class probabilities "
        f"of each image. Any size up to {MAX_PIXELS // 10 ** 6} megapixels, greyscale or colour, "
        "dark ink on light paper, light on dark, or strokes on a transparent canvas works: each "
        "image is turned upright as its EXIF tag says, cropped to its ink, scaled and centred the "
        "way MNIST was made. An unreadable, too large or empty image is reported and the others "
        "are still predicted; the exit status is then 1.")
    cli.add_checkpoint_argument(parser)
    cli.add_lstm_argument(parser)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per image and line, in the order given: "
                             "file, digit, probabilities; or file and error for a bad image")
    args = parser.parse_args(argv)
    from lstm_mnist.predict import Classifier, predict_files  # imports TensorFlow: flags first
    with Classifier(args.checkpoint, lstm=args.lstm) as classifier:
        answers = predict_files(classifier, args.images)
    for answer in answers:
        if args.json:
            print(json.dumps(answer.to_dict()))
        elif isinstance(answer, ImageError):
            cli.print_error("predict.py", answer)
        else:
            print(cli.printable(answer.describe()))  # a file name may hold control characters
    return 1 if any(isinstance(answer, ImageError) for answer in answers) else 0


if __name__ == "__main__":
    cli.run(main, "predict.py")
