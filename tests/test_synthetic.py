import numpy as np

from diffusion_course.synthetic import GARDEN_PETAL_COLOURS, synthetic_flowers, synthetic_garden


def test_synthetic_flowers_are_deterministic_images_at_any_size():
    images = synthetic_flowers(6, 16, seed=3)
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, synthetic_flowers(6, 16, seed=3))
    assert not np.array_equal(images, synthetic_flowers(6, 16, seed=4))
    # the same scenes at a higher resolution: averaging 4x4 blocks gives nearly the same image
    large = synthetic_flowers(6, 64, seed=3).reshape(6, 16, 4, 16, 4, 3).mean(axis=(2, 4))
    assert np.abs(large - images).mean() < 0.05


def test_synthetic_garden_draws_one_palette_flower_on_green_foliage():
    images = synthetic_garden(8, 32, seed=5)
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images, synthetic_garden(8, 32, seed=5))
    corners = images[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # foliage: green is the largest channel
    assert (corners.argmax(axis=-1) == 1).all()
    # a good part of the middle is petals, each within 0.05 (the jitter) of a palette colour
    pixels_on_petals = [np.abs(GARDEN_PETAL_COLOURS - pixel).max(axis=1).min() < 0.06
                        for pixel in images[:, 8:24, 8:24].reshape(-1, 3)]
    assert sum(pixels_on_petals) > 0.25 * len(pixels_on_petals)
