"""Draw how a trained model reads a digit: its class probabilities after every step and the gates
and cell state of every LSTM.

    python scripts/explain.py --checkpoint checkpoints/part1 --test-index 7 --output explain/
    python scripts/explain.py --checkpoint checkpoints/part1 my_digit.png --output explain/
    python scripts/explain.py --checkpoint checkpoints/part2 --test-index 7 --crop-seed 3
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402
from lstm_mnist.images import ImageError  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="explain.py", description="For each test image or image file, write one picture "
        "<output>/<name>.explain.png of how the model read it: the input as the LSTM saw it, the "
        "probability of each digit had the sequence ended after each step (unidirectional models), "
        "the step from which the final answer no longer changes, and the input, forget and output "
        "gates and the cell state of every LSTM at every step. Image files are brought into "
        "MNIST's form as predict.py does; an unreadable one is reported, the others are still "
        "explained, and the exit status is then 1.")
    cli.add_checkpoint_argument(parser)
    cli.add_lstm_argument(parser)
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--test-index", type=int, action="append", default=[], metavar="N",
                        help="explain test image N (0..9999); may be given several times")
    parser.add_argument("--crop-seed", type=int,
                        help="read a crop instead of the full image: test image N (the k-th "
                             "file) gets crop N (k) of the crops drawn from this seed, the crop "
                             "eval.py --crop-seed measures it on")
    cli.add_data_dir_argument(parser)
    parser.add_argument("--output", default="explain", metavar="DIR",
                        help="folder for the pictures (default: explain); a picture of the same "
                             "name from an earlier run is replaced")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per input and line: source, digit, "
                             "probabilities, steps (each step's probabilities; unidirectional "
                             "models only), settled_at_step, image (the picture's path), label "
                             "(test images); or file and error for a bad image")
    args = parser.parse_args(argv)
    if not args.images and not args.test_index:
        parser.error("nothing to explain: give IMAGE files or --test-index N")
    from lstm_mnist.predict import Classifier, explain_images  # imports TensorFlow: flags first
    with Classifier(args.checkpoint, trace=True, lstm=args.lstm) as classifier:
        answers = explain_images(classifier, args.output, args.images, args.test_index,
                                 args.crop_seed, args.data_dir)
    for answer in answers:
        if isinstance(answer, ImageError):
            if args.json:
                print(json.dumps(answer.to_dict()))
            else:
                cli.print_error("explain.py", answer)
            continue
        explanation, picture = answer
        if args.json:
            print(json.dumps(explanation.to_dict(picture)))
        else:
            print(cli.printable(explanation.describe(picture)))
    return 1 if any(isinstance(answer, ImageError) for answer in answers) else 0


if __name__ == "__main__":
    cli.run(main, "explain.py")
