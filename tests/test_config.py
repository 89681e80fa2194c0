"""The configuration object: validation, spreading hidden sizes, its parts, its JSON files."""

import glob
import os
import json

import pytest

from lstm_mnist.config import (Config, ConfigError, ModelConfig, load_config, save_config,
                               tiny_config)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("changes", [{"layers": 0}, {"hidden": (8, 8)}, {"dropout": 1.0},
                                     {"batch_size": 0}, {"lr": 0.0}, {"crop_min": 29},
                                     {"crop_min": 26, "crop_max": 25}, {"clip": -1.0},
                                     {"layers": 3, "hidden": (8, 8)}, {"hidden": (8, 0)},
                                     {"lr_schedule": "linear"}, {"seed": -1},
                                     {"crop_seed": 2 ** 32}])
def test_config_rejects_bad_values(changes):
    with pytest.raises(ConfigError):
        tiny_config(**changes)


@pytest.mark.parametrize("changes,hidden", [({}, (128,)), ({"layers": 2}, (128, 128)),
                                            ({"layers": 2, "hidden": (64,)}, (64, 64)),
                                            ({"layers": 2, "hidden": [64, 32]}, (64, 32))])
def test_one_hidden_size_serves_every_layer(changes, hidden):
    assert Config(**changes).hidden == hidden
    assert ModelConfig(**changes).hidden == hidden


def test_the_model_part_holds_the_model_fields_and_the_optimizer_the_training_ones():
    config = Config(layers=2, hidden=(64, 32), bidirectional=True, head_hidden=32, dropout=0.1,
                    crop=True, epochs=3, lr=1e-3, lr_schedule="constant", clip=2.0)
    assert config.model == ModelConfig(layers=2, hidden=(64, 32), bidirectional=True,
                                       head_hidden=32, dropout=0.1)
    assert Config.from_dict(config.model.to_dict()) == Config(**config.model.to_dict())
    optimizer = config.optimizer(steps_per_epoch=50)
    assert (optimizer.lr, optimizer.lr_schedule, optimizer.clip) == (1e-3, "constant", 2.0)
    assert optimizer.decay_steps == 150


def test_config_round_trips_through_json(tmp_path):
    config = Config(layers=3, hidden=(64, 32, 16), bidirectional=True, crop=True, dropout=0.3)
    save_config(str(tmp_path / "config.json"), config, {"data_sha256": {}})
    assert load_config(str(tmp_path / "config.json")) == config


def test_every_committed_config_file_still_loads():
    paths = glob.glob(os.path.join(ROOT, "checkpoints", "*", "config.json")) + glob.glob(
        os.path.join(ROOT, "logs", "*", "config.json"))
    assert paths, "the reference runs' config files are committed"
    for path in paths:
        config = load_config(path)
        assert len(config.hidden) == config.layers, path


@pytest.mark.parametrize("document,fragment", [('{"config": {"bogus": 1}}', "unknown config keys"),
                                               ("{", "not a valid lstm_mnist config")])
def test_bad_config_files_are_one_clear_error(tmp_path, document, fragment):
    path = tmp_path / "config.json"
    path.write_text(document)
    with pytest.raises(ConfigError, match=fragment):
        load_config(str(path))



@pytest.mark.parametrize("values,fragment", [
    ({"hidden": [True]}, "hidden sizes must be integers in 1..65536, got [True]"),
    ({"hidden": "16"}, "hidden must be a list of sizes, got '16'"),
    ({"layers": True}, "layers must be an integer in 1..64, got True"),
    ({"crop": "no"}, "crop must be true or false, got 'no'"),
    ({"bidirectional": 1}, "bidirectional must be true or false, got 1"),
    ({"hidden": [10 ** 30]}, "hidden sizes must be integers in 1..65536, got [1000000000000000"),
    ({"head_hidden": 10 ** 400}, "head_hidden must be an integer in 1..65536, got 100000"),
    ({"epochs": 10 ** 20}, "epochs must be an integer in 1..100000, got 100000000000000000000"),
    ({"batch_size": 2.5}, "batch_size must be an integer in"),
])
def test_crafted_config_values_are_refused_by_name(tmp_path, values, fragment):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": values}))
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    assert str(refused.value).startswith(f"{path}: ") and fragment in str(refused.value)
    assert len(str(refused.value)) < 300


def test_config_files_are_read_with_limits(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"config": ' + "[" * 100000 + "]" * 100000 + "}")
    huge = tmp_path / "huge.json"
    huge.write_text('{"config": {}, "padding": "' + "x" * 2 ** 21 + '"}')
    os.mkfifo(tmp_path / "fifo.json")
    os.symlink("/dev/zero", tmp_path / "zero.json")
    for name, fragment in (("deep.json", "nested too deep"), ("huge.json", "larger than"),
                           ("fifo.json", "not a regular file"), ("zero.json", "not a regular file"),
                           ("missing.json", "cannot read config")):
        with pytest.raises(ConfigError, match=fragment):
            load_config(str(tmp_path / name))


def test_a_model_too_big_for_memory_is_refused_from_its_config_alone():
    from lstm_mnist.memory import check_memory, weight_count
    assert weight_count(ModelConfig()) == 4 * 128 * (28 + 128 + 1) + 256 * 129 + 10 * 257
    check_memory(Config(), 256, training=True)
    huge = Config(hidden=(65536,), layers=1, head_hidden=65536)
    with pytest.raises(ConfigError, match="the model needs about .* GiB .* more than this machine"):
        check_memory(huge, 256, training=True)
    with pytest.raises(ConfigError, match="more than this machine"):
        check_memory(huge, 1000, training=False)
