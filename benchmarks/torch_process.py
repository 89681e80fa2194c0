"""The PyTorch candidate of the benchmark, trained in a process of its own.

TensorFlow's and PyTorch's thread pools would compete for the same cores in one process, so
`TorchCandidate` (in the benchmark's process; it never imports torch) starts this module as
`python -m benchmarks.torch_process` and asks it for one measurement at a time: while one side
measures, the other waits on a pipe. Requests and replies are JSON lines on the worker's standard
input and output.

The worker imports `lstm_mnist` for the data pipeline (the same batches as the TensorFlow
candidates), which imports TensorFlow, but it never builds a graph or opens a session, so no
TensorFlow thread pool exists in it.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, Optional

from lstm_mnist.config import Config
from lstm_mnist.errors import UserError

# The checkout holding benchmarks/: the worker runs in it, so it imports this process's code.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_INSTALL = ('a CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu, '
               'then pip install -e ".[bench]"')


def torch_missing() -> Optional[str]:
    """Why the PyTorch reference cannot run here, or None if torch is importable."""
    return None if importlib.util.find_spec("torch") else f"torch is not installed ({CPU_INSTALL})"


class TorchCandidate:
    """PyTorch's mirror of the classifier in a worker process: `load` builds one config's model
    there, `measure` times it (one worker serves every config, so PyTorch loads once)."""

    def __init__(self, threads: int, steps_per_epoch: int):
        # PyTorch runs with the OpenMP wait policy its users get (unless the environment sets
        # one): on an idle machine its threads spin briefly between parallel regions, which
        # PASSIVE (sleep at once) would slow down; on a busy machine the spinning threads hold
        # the cores their partners need, and OMP_WAIT_POLICY=PASSIVE python scripts/bench.py keeps
        # the reference from collapsing (docs/performance.md).
        self._stderr = tempfile.TemporaryFile("w+")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.torch_process", "--threads", str(threads),
             "--steps-per-epoch", str(steps_per_epoch)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True)
        self.info = self._reply()  # {"torch_version", "threads", "omp_wait_policy"} when ready

    def load(self, config: Config):
        """Builds `config`'s classifier and optimizer in the worker, replacing the last one."""
        self._request({"config": config.to_dict()})

    def measure(self, seconds: float, train: bool) -> Dict[str, float]:
        """Runs steps for about `seconds`; returns examples/s and the batch-preparation share."""
        return self._request({"seconds": seconds, "train": train})

    def _request(self, message: dict) -> dict:
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        return self._reply()

    def _reply(self) -> dict:
        line = self._process.stdout.readline()
        if line:
            return json.loads(line)
        self._process.wait()
        self._stderr.seek(0)
        last = [line for line in self._stderr.read().splitlines() if line.strip()][-1:]
        raise UserError(f"the PyTorch reference process stopped (exit status "
                        f"{self._process.returncode}): {last[0] if last else 'no message'}")

    def close(self):
        self._process.stdin.close()
        self._process.wait()
        self._stderr.close()


def _serve(threads: int, steps_per_epoch: int, replies):
    import torch  # only here: the benchmark's own process never loads PyTorch

    from benchmarks.timing import RandomBatches, measure
    from benchmarks.torch_mirror import TorchTrainer
    from lstm_mnist.data import load_mnist

    def reply(message):
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    torch.set_num_threads(threads)
    train = load_mnist().train
    reply({"torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")})
    for line in sys.stdin:
        request = json.loads(line)
        if "config" in request:
            config = Config.from_dict(request["config"])
            batches = RandomBatches(config, train.images, train.labels)
            trainer = TorchTrainer(config, steps_per_epoch)
            reply({"loaded": config.to_dict()})
        else:
            reply(measure(trainer.train_step if request["train"] else trainer.evaluate, batches,
                          request["seconds"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True, help="PyTorch's intra-op threads")
    parser.add_argument("--steps-per-epoch", type=int, required=True,
                        help="for the learning-rate schedule, as the TensorFlow candidates have")
    args = parser.parse_args()
    # Replies get the real standard output; anything a library prints goes to standard error.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(args.threads, args.steps_per_epoch, replies)

if __name__ == "__main__":
    main()
