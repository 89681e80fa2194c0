"""A PyTorch mirror of the classifier of `lstm_mnist.model`: the benchmark's outside reference.

PyTorch's fused CPU LSTM (`nn.LSTM`, optionally stacked and bidirectional) with the same sizes, the
same ReLU head, dropout on the same non-recurrent connections (the input of every LSTM layer and
the head's input) and the same training step (Adam, cosine learning-rate decay, global-norm
clipping). Variable-length batches go through `pack_padded_sequence`, so PyTorch, like ours, never
computes on padding; full-length batches (Part 1) go in as they are, as a PyTorch user would write.

PyTorch is an optional extra (`pip install -e ".[bench]"`): only the benchmark's PyTorch process
and the tests import this module, never `lstm_mnist`.
"""

from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lstm_mnist.config import Config
from lstm_mnist.cell import DIRECTIONS, FORGET_BIAS, NUM_GATES
from lstm_mnist.model import NUM_CLASSES
from lstm_mnist.sequences import PIXELS_PER_STEP

# Gate blocks: ours are input | forget | output | candidate, PyTorch's input | forget | candidate |
# output. The permutation is its own inverse, so it also maps PyTorch's order back to ours.
_GATE_PERMUTATION = (0, 1, 3, 2)


def to_torch_gate_order(matrix: np.ndarray) -> np.ndarray:
    """Reorders the four gate blocks of the last axis between our order and PyTorch's."""
    blocks = np.split(matrix, NUM_GATES, axis=-1)
    return np.concatenate([blocks[k] for k in _GATE_PERMUTATION], axis=-1)


class TorchClassifier(nn.Module):
    """Pixel rows -> `nn.LSTM` -> ReLU layer -> 10 logits, like `lstm_mnist.model.Model`."""

    def __init__(self, config: Config):
        super().__init__()
        if len(set(config.hidden)) != 1:
            raise ValueError(f"nn.LSTM stacks layers of one size, got {list(config.hidden)}")
        self.directions = 2 if config.bidirectional else 1
        self.input_dropout = nn.Dropout(config.dropout)
        # nn.LSTM's own dropout acts between layers: on the input of every layer but the first.
        self.lstm = nn.LSTM(PIXELS_PER_STEP, config.hidden[0], num_layers=config.layers,
                            dropout=config.dropout if config.layers > 1 else 0.0,
                            bidirectional=config.bidirectional)
        self.head_dropout = nn.Dropout(config.dropout)
        self.hidden = nn.Linear(config.hidden[0] * self.directions, config.head_hidden)
        self.logits = nn.Linear(config.head_hidden, NUM_CLASSES)
        self._initialize_like_ours()

    def _initialize_like_ours(self):
        """Our initialisation (`lstm.create_lstm_weights`, `model._dense`), and one bias per gate.

        PyTorch adds two biases, `b_ih + b_hh`, where ours has one `b`: `b_hh` stays 0 and is not
        trained, so both models have the same parameters, gradient norm and Adam updates.
        """
        for name, parameter in self.named_parameters():
            if "weight_hh" in name:
                nn.init.orthogonal_(parameter)
            elif "weight" in name:
                nn.init.xavier_uniform_(parameter)  # Glorot: PyTorch's [out, in] has our fans
            else:
                nn.init.zeros_(parameter)
            if name.startswith("lstm.bias_ih"):
                with torch.no_grad():
                    parameter[self.lstm.hidden_size:2 * self.lstm.hidden_size] = FORGET_BIAS
            parameter.requires_grad_(not name.startswith("lstm.bias_hh"))

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Args:
          inputs: float32 `[time, batch, 28]`, time-major, zero-padded.
          lengths: int64 `[batch]` on the CPU, valid steps per example.

        Returns:
          `[batch, 10]` logits.
        """
        inputs = self.input_dropout(inputs)
        if bool((lengths < inputs.shape[0]).any()):
            inputs = pack_padded_sequence(inputs, lengths, enforce_sorted=False)
        _, (final_h, _) = self.lstm(inputs)
        # final_h `[layers * directions, batch, hidden]`, in the batch's own order: the top layer's
        # forward output at each example's last valid step and, bidirectional, its backward output
        # after the whole valid sequence, as in our `StackOutput.last_output`.
        features = torch.cat(tuple(final_h[-self.directions:]), dim=1)
        return self.logits(torch.relu(self.hidden(self.head_dropout(features))))


def mirror_state_dict(values: Dict[str, np.ndarray], config: Config) -> Dict[str, torch.Tensor]:
    """Our classifier's variables as the mirror's `state_dict`.

    Ours computes `gates = x W_x + h W_h + b`; PyTorch `x W_ih^T + b_ih + h W_hh^T + b_hh`. So
    `W_ih = W_x^T` and `W_hh = W_h^T` (gate blocks reordered), `b_ih = b` and `b_hh = 0` (the mirror
    does not train it). The forget bias of 1 is part of the value of our `b` (its initial value,
    not a constant added in the cell), so it travels with `b`; nothing is added on PyTorch's side.

    Args:
      values: `{variable name: value}` of `Model.model_variables`, e.g. `lstm/layer_0/fw/w_x`.
      config: the classifier's config.
    """
    state = {}
    for layer in range(config.layers):
        for direction in DIRECTIONS if config.bidirectional else DIRECTIONS[:1]:
            ours = f"lstm/layer_{layer}/{direction}/"
            theirs = f"lstm.{{}}_l{layer}" + ("_reverse" if direction == "bw" else "")
            state[theirs.format("weight_ih")] = to_torch_gate_order(values[ours + "w_x"]).T
            state[theirs.format("weight_hh")] = to_torch_gate_order(values[ours + "w_h"]).T
            state[theirs.format("bias_ih")] = to_torch_gate_order(values[ours + "b"])
            state[theirs.format("bias_hh")] = np.zeros_like(values[ours + "b"])
    for name in ("hidden", "logits"):
        state[f"{name}.weight"] = values[f"head/{name}/w"].T
        state[f"{name}.bias"] = values[f"head/{name}/b"]
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}


class TorchTrainer:
    """The mirror with its optimizer: one `train_step` is what `Model.train_op` does for a batch."""

    def __init__(self, config: Config, steps_per_epoch: int):
        torch.manual_seed(config.seed)
        self.config = config
        self.model = TorchClassifier(config)
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.parameters, lr=config.lr)
        self.schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, config.epochs * steps_per_epoch)
            if config.lr_schedule == "cosine" else None)

    def train_step(self, inputs: np.ndarray, lengths: np.ndarray,
                   labels: np.ndarray) -> Tuple[float, float]:
        """One Adam step on a batch (dropout on); returns the loss and the gradients' global norm
        before clipping."""
        self.model.train()
        loss = self._loss(inputs, lengths, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # An infinite bound measures the norm without clipping (clip 0 = off, as in Model).
        grad_norm = nn.utils.clip_grad_norm_(self.parameters, self.config.clip or float("inf"))
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        return loss.item(), grad_norm.item()

    @torch.no_grad()
    def evaluate(self, inputs: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> float:
        """The mean cross-entropy of a batch with dropout off: inference."""
        self.model.eval()
        return self._loss(inputs, lengths, labels).item()

    def _loss(self, inputs: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> torch.Tensor:
        logits = self.model(torch.from_numpy(inputs), torch.from_numpy(lengths.astype(np.int64)))
        return nn.functional.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
