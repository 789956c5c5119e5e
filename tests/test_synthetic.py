import numpy as np

from diffusion_course.synthetic import synthetic_flowers


def test_synthetic_flowers_are_deterministic_images_at_any_size():
    images = synthetic_flowers(6, 16, seed=3)
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, synthetic_flowers(6, 16, seed=3))
    assert not np.array_equal(images, synthetic_flowers(6, 16, seed=4))
    # the same scenes at a higher resolution: averaging 4x4 blocks gives nearly the same image
    large = synthetic_flowers(6, 64, seed=3).reshape(6, 16, 4, 16, 4, 3).mean(axis=(2, 4))
    assert np.abs(large - images).mean() < 0.05
