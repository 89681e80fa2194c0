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
from lstm_mnist.files import read_json, write_atomic
from lstm_mnist.sequences import IMAGE_SIZE

LR_SCHEDULES = ("constant", "cosine")
LSTM_IMPLEMENTATIONS = ("fast", "textbook")  # lstm.py: the same numbers from the same variables
# Bounds far beyond any sensible run, so that a typo or a crafted config.json is refused at once
# rather than by TensorFlow after minutes and all the memory there is (`memory` judges the rest).
MAX_LAYERS = 64
MAX_UNITS = 2 ** 16
MAX_EPOCHS = 10 ** 5
MAX_EXAMPLES = 10 ** 7


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
        _require(isinstance(self.hidden, (list, tuple)),
                 f"hidden must be a list of sizes, got {self.hidden!r}")
        # Accept lists (e.g. from JSON) but store a tuple so the config stays hashable and frozen.
        hidden = tuple(self.hidden)
        if len(hidden) == 1 and isinstance(self.layers, int) and self.layers > 1:
            hidden *= self.layers
        object.__setattr__(self, "hidden", hidden)
        self.validate()

    def validate(self):
        """Raises ConfigError naming the first bad value."""
        _require_int("layers", self.layers, 1, MAX_LAYERS)
        _require(len(self.hidden) == self.layers,
                 f"hidden gives {len(self.hidden)} sizes for {self.layers} layers: "
                 "give one size, or one per layer")
        _require(all(_is_int(h) and 1 <= h <= MAX_UNITS for h in self.hidden),
                 f"hidden sizes must be integers in 1..{MAX_UNITS}, got {_shown(self.hidden)}")
        _require_int("head_hidden", self.head_hidden, 1, MAX_UNITS)
        _require(isinstance(self.bidirectional, bool),
                 f"bidirectional must be true or false, got {_shown(self.bidirectional)}")
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

    # 10 epochs of 256 at 5e-3: the best mean validation error, over two seeds, of the schedules
    # that finish in 90 s on two cores (docs/results.md, docs/runs/part1-short-schedules). A longer
    # recipe for the best accuracy is in docs/results.md.
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
        _require(isinstance(self.crop, bool), f"crop must be true or false, got {_shown(self.crop)}")
        _require(_is_int(self.crop_min) and _is_int(self.crop_max)
                 and 1 <= self.crop_min <= self.crop_max <= IMAGE_SIZE,
                 f"crop bounds must satisfy 1 <= crop_min <= crop_max <= {IMAGE_SIZE}, "
                 f"got {_shown(self.crop_min)}..{_shown(self.crop_max)}")
        _require_int("train_subset", self.train_subset, 0, MAX_EXAMPLES)
        _require_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _require_int("batch_size", self.batch_size, 1, MAX_EXAMPLES)
        _require(_is_number(self.lr) and self.lr > 0,
                 f"learning rate must be > 0, got {self.lr!r}")
        _require(self.lr_schedule in LR_SCHEDULES,
                 f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        _require(_is_number(self.clip) and self.clip >= 0,
                 f"clip must be >= 0 (0 = off), got {self.clip!r}")
        for name in ("seed", "crop_seed"):  # numpy's generators take only non-negative seeds
            value = getattr(self, name)
            _require_int(name, value, 0, 2 ** 32 - 1)

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
        document = read_json(path)
        _require(isinstance(document, dict) and isinstance(document.get("config"), dict),
                 "not a valid lstm_mnist config (no \"config\" object)")
        return Config.from_dict(document["config"])
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a valid lstm_mnist config ({str(error)[:200]})") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON's true is no size


def _require_int(name: str, value, low: int, high: int):
    _require(_is_int(value) and low <= value <= high,
             f"{name} must be an integer in {low}..{high}, got {_shown(value)}")


def _shown(value) -> str:
    """`value` for a message: its repr, cut short (a crafted config may hold 10**400)."""
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(condition: bool, message: str):
    if not condition:
        raise ConfigError(message)
