"""Images to padded pixel sequences, with and without random crops."""

import numpy as np

from lstm_mnist.sequences import Crops, batches, draw_crops, to_sequences


def _images(count, seed=0):
    return np.random.default_rng(seed).random((count, 28, 28), dtype=np.float32)


def test_full_images_are_read_row_by_row():
    images = _images(3)
    inputs, lengths = to_sequences(images)
    assert inputs.shape == (28, 3, 28) and inputs.dtype == np.float32
    np.testing.assert_array_equal(lengths, [28, 28, 28])
    np.testing.assert_array_equal(inputs[5, 2], images[2, 5])


def test_crops_are_flattened_row_major_cut_into_28_pixel_steps_and_zero_padded():
    images = _images(64, seed=1) + 0.5  # no zero pixels, so padding is recognisable
    crops = draw_crops(np.random.default_rng(2), 64, 24, 28)
    inputs, lengths = to_sequences(images, crops)
    pixels = crops.height * crops.width
    np.testing.assert_array_equal(lengths, np.ceil(pixels / 28).astype(int))
    assert lengths.min() >= 21 and lengths.max() <= 28 and inputs.shape[0] == lengths.max()
    for b in range(64):
        h, w, top, left = (int(field[b]) for field in crops)
        flat = inputs[:, b].reshape(-1)  # time-major steps back to one pixel stream
        expected = images[b, top:top + h, left:left + w].reshape(-1)
        np.testing.assert_array_equal(flat[:h * w], expected)
        assert np.all(flat[h * w:] == 0.0)  # the rest of the last step, and whole padding steps


def test_crop_sizes_and_positions_cover_their_ranges():
    crops = draw_crops(np.random.default_rng(3), 20000, 24, 28)
    assert set(crops.height) == set(range(24, 29)) and set(crops.width) == set(range(24, 29))
    assert np.all(crops.top + crops.height <= 28) and np.all(crops.left + crops.width <= 28)
    assert set(crops.top[crops.height == 24]) == set(range(5))
    assert set(crops.left[crops.width == 24]) == set(range(5))
    assert np.all(crops.top[crops.height == 28] == 0)


def test_custom_crop_bounds_are_respected():
    crops = draw_crops(np.random.default_rng(4), 1000, 10, 12)
    assert crops.height.min() == 10 and crops.height.max() == 12
    _, lengths = to_sequences(_images(1000), crops)
    assert lengths.min() == 4 and lengths.max() == 6  # ceil(100/28), ceil(144/28)


def test_fixed_seed_evaluation_crops_are_identical_across_calls():
    first = draw_crops(np.random.default_rng(2014), 500, 24, 28)
    second = draw_crops(np.random.default_rng(2014), 500, 24, 28)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_batches_cover_every_example_once_in_the_given_order():
    images, labels = _images(10), np.arange(10)
    order = np.random.default_rng(5).permutation(10)
    crops = Crops(*(np.full(10, v) for v in (24, 24, 0, 0)))
    seen = []
    for inputs, lengths, batch_labels in batches(images, labels, 4, order, crops):
        assert inputs.shape[1] == len(batch_labels) == len(lengths)
        seen.extend(batch_labels)
    assert seen == list(order)
