"""The one configuration object: every hyperparameter of a run.

A `Config` flows from the command line to the data pipeline, the model and the training loop, and is
saved as JSON beside every checkpoint so that `eval.py` (or `--resume`) rebuilds exactly the same
graph from the checkpoint folder alone. Its first part, `ModelConfig`, is all that `Model` reads to
build the graph; `Config.optimizer` is the part of the rest that goes into the training graph.

Each field carries the help text of its command-line flag (`cli.add_config_arguments` makes one
flag per field), so a new hyperparameter is one field and one line in `validate`.
"""

import dataclasses
import json
import math
from typing import NamedTuple, Tuple

from lstm_mnist.errors import UserError
from lstm_mnist.files import write_atomic
from lstm_mnist.sequences import IMAGE_SIZE

LR_SCHEDULES = ("constant", "cosine")
LSTM_IMPLEMENTATIONS = ("fast", "textbook")  # lstm.py: the same numbers from the same variables


class ConfigError(UserError):
    """A hyperparameter is out of range or inconsistent with another."""


def setting(default, group: str, help: str, **flag) -> dataclasses.Field:
    """A config field: its default, the group and help text of its command-line flag, and any other
    argparse keywords for the flag in `flag` (e.g. `choices`)."""
    return dataclasses.field(default=default, metadata={"group": group, "help": help, **flag})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model's own hyperparameters: what `Model` builds its graph from.

    One size in `hidden` serves every layer: `ModelConfig(layers=2)` has `hidden == (128, 128)`.
    """

    layers: int = setting(1, "model", "number of stacked LSTM layers; layer k reads layer k-1's "
                                      "output sequence")
    hidden: Tuple[int, ...] = setting((128,), "model", "units per layer, comma-separated; one "
                                                       "value is used for every layer")
    bidirectional: bool = setting(False, "model", "give every layer a backward LSTM too")
    head_hidden: int = setting(256, "model", "units of the classifier's hidden ReLU layer")
    dropout: float = setting(0.2, "model", "drop probability on non-recurrent connections only "
                                           "(Zaremba et al. 2014): the input of every LSTM layer "
                                           "and of the classifier head")
    lstm: str = setting("fast", "model", "which implementation runs the LSTM: fast (packed "
                                         "sequences, backprop by hand) or textbook (a padded "
                                         "while_loop, autodiff; slower); a checkpoint of either "
                                         "serves both", choices=LSTM_IMPLEMENTATIONS)

    def __post_init__(self):
        # Accept lists (e.g. from JSON) but store a tuple so the config stays hashable and frozen.
        hidden = tuple(self.hidden)
        if len(hidden) == 1 and isinstance(self.layers, int) and self.layers > 1:
            hidden *= self.layers
        object.__setattr__(self, "hidden", hidden)
        self.validate()

    def validate(self):
        """Raises ConfigError naming the first bad value."""
        _require(isinstance(self.layers, int) and self.layers >= 1,
                 f"layers must be an integer >= 1, got {self.layers!r}")
        _require(len(self.hidden) == self.layers,
                 f"hidden gives {len(self.hidden)} sizes for {self.layers} layers: "
                 "give one size, or one per layer")
        _require(all(isinstance(h, int) and h >= 1 for h in self.hidden),
                 f"hidden sizes must be integers >= 1, got {list(self.hidden)}")
        _require(isinstance(self.head_hidden, int) and self.head_hidden >= 1,
                 f"head_hidden must be an integer >= 1, got {self.head_hidden!r}")
        _require(_is_number(self.dropout) and 0.0 <= self.dropout < 1.0,
                 f"dropout is a drop probability in [0, 1), got {self.dropout!r}")
        _require(self.lstm in LSTM_IMPLEMENTATIONS,
                 f"lstm must be one of {', '.join(LSTM_IMPLEMENTATIONS)}, got {self.lstm!r}")

    def replace(self, **changes):
        """Returns a copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["hidden"] = list(self.hidden)
        return values

    @classmethod
    def from_dict(cls, values: dict):
        """Builds a config from `to_dict()` output; unknown keys are an error, missing keys
        default."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        _require(not unknown, f"unknown config keys: {', '.join(unknown)}")
        return cls(**values)


class OptimizerConfig(NamedTuple):
    """What the training graph's optimizer reads (`Config.optimizer` makes it).

    Attributes:
      lr: Adam's learning rate, the peak of the schedule.
      lr_schedule: one of LR_SCHEDULES.
      decay_steps: training steps over which the cosine schedule decays to zero.
      clip: the global norm gradients are clipped to; 0 = no clipping.
    """

    lr: float
    lr_schedule: str
    decay_steps: int
    clip: float


@dataclasses.dataclass(frozen=True)
class Config(ModelConfig):
    """Hyperparameters of the model (those of ModelConfig), the data pipeline and the training loop.

    The defaults are the Part 1 model (one LSTM layer over full 28x28 images), the settings of the
    committed `part1` reference run.
    """

    crop: bool = setting(False, "data", "train on random crops, i.e. variable-length sequences "
                                        "(Part 2); validation and test are then measured on full "
                                        "and cropped images")
    crop_min: int = setting(24, "data", "smallest crop height and width in pixels")
    crop_max: int = setting(28, "data", "largest crop height and width in pixels")
    crop_seed: int = setting(2014, "data", "seed of the fixed crops for evaluation")
    train_subset: int = setting(0, "data", "train on the first N training images only, for a "
                                           "quick try; 0 means all 55000")

    # 10 epochs of 256 at 5e-3: the best mean validation error (0.84%, seeds 0 and 1) of the
    # schedules that finish in 90 s on two cores, chosen side by side with 8 or 10 epochs at 4e-3
    # and 12 epochs of 512 (docs/runs/part1-short-schedules). A longer recipe for the best accuracy
    # is in README.md.
    epochs: int = setting(10, "optimisation", "passes over the training set")
    batch_size: int = setting(256, "optimisation", "examples per minibatch")
    lr: float = setting(5e-3, "optimisation", "Adam learning rate, the peak of the schedule")
    lr_schedule: str = setting("cosine", "optimisation",
                               "constant, or cosine decay to zero over all epochs",
                               choices=LR_SCHEDULES)
    clip: float = setting(5.0, "optimisation", "clip gradients to this global norm; 0 turns "
                                               "clipping off")
    seed: int = setting(0, "optimisation", "seed for weights, shuffling, crops and dropout")

    def validate(self):
        super().validate()
        _require(isinstance(self.crop_min, int) and isinstance(self.crop_max, int)
                 and 1 <= self.crop_min <= self.crop_max <= IMAGE_SIZE,
                 f"crop bounds must satisfy 1 <= crop_min <= crop_max <= {IMAGE_SIZE}, "
                 f"got {self.crop_min!r}..{self.crop_max!r}")
        _require(isinstance(self.train_subset, int) and self.train_subset >= 0,
                 f"train_subset must be an integer >= 0, got {self.train_subset!r}")
        _require(isinstance(self.epochs, int) and self.epochs >= 1,
                 f"epochs must be an integer >= 1, got {self.epochs!r}")
        _require(isinstance(self.batch_size, int) and self.batch_size >= 1,
                 f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        _require(_is_number(self.lr) and self.lr > 0,
                 f"learning rate must be > 0, got {self.lr!r}")
        _require(self.lr_schedule in LR_SCHEDULES,
                 f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        _require(_is_number(self.clip) and self.clip >= 0,
                 f"clip must be >= 0 (0 = off), got {self.clip!r}")
        for name in ("seed", "crop_seed"):  # numpy's generators take only non-negative seeds
            value = getattr(self, name)
            _require(isinstance(value, int) and 0 <= value < 2 ** 32,
                     f"{name} must be an integer in 0..2**32-1, got {value!r}")

    @property
    def model(self) -> ModelConfig:
        """The model's part alone (what rebuilds the model from a checkpoint's config)."""
        return ModelConfig(**{field.name: getattr(self, field.name)
                              for field in dataclasses.fields(ModelConfig)})

    def optimizer(self, steps_per_epoch: int) -> OptimizerConfig:
        """The optimizer's settings for a training of `steps_per_epoch` minibatches per epoch."""
        return OptimizerConfig(lr=self.lr, lr_schedule=self.lr_schedule,
                               decay_steps=self.epochs * steps_per_epoch, clip=self.clip)


def tiny_config(**changes) -> Config:
    """A model small enough to build and train in a second or two: for tests and quick tries."""
    return Config(hidden=(8,), head_hidden=16, epochs=1, train_subset=256, batch_size=64,
                  dropout=0.0).replace(**changes)


def save_config(path: str, config: Config, extra: dict = None):
    """Writes `config` (and `extra` keys, e.g. data checksums) as JSON, atomically."""
    document = {"config": config.to_dict()}
    document.update(extra or {})
    write_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def load_config(path: str) -> Config:
    """Reads a config written by `save_config`. Raises ConfigError if it is unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        return Config.from_dict(document["config"])
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a valid lstm_mnist config ({error})") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(condition: bool, message: str):
    if not condition:
        raise ConfigError(message)
