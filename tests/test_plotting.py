import math

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from diffusion_course.plotting import (
    LABEL_HEIGHT,
    denoising_strip,
    image_grid,
    plot_ddpm_rates,
    plot_kid_vs_evaluations,
    plot_schedule,
    plot_schedules,
    plot_training_curves,
    save_image_grid,
    tile_images,
    to_uint8,
    write_gif,
)


def solid_images(num_images, height=4, width=6):
    """Image i is filled with the gray level 51 * i / 255, so every cell is recognisable."""
    levels = np.arange(num_images, dtype="float32") * 51 / 255
    return np.broadcast_to(levels[:, None, None, None], (num_images, height, width, 3)).copy()


def images_shown(figure):
    return sum(len(ax.images) for ax in figure.axes)


def test_to_uint8_clips_scales_and_rounds():
    images = np.array([0.0, 0.25, 0.5, 1.0, -1.0, 2.0, 0.1], "float32")
    np.testing.assert_array_equal(to_uint8(images), [0, 64, 128, 255, 0, 255, 26])
    assert to_uint8(keras.ops.convert_to_tensor(images)).dtype == np.uint8
    pixels = np.array([0, 7, 255], "uint8")
    assert to_uint8(pixels) is pixels  # already pixels: left alone, not clipped to 0..1
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        to_uint8(np.array([0.5, np.nan]))


@pytest.mark.parametrize("num_images, rows, cols, expected", [
    (6, None, None, (2, 3)),
    (5, None, None, (2, 3)),
    (6, 1, None, (1, 6)),
    (6, None, 2, (3, 2)),
    (4, 3, 3, (3, 3)),
])
def test_image_grid_layout(num_images, rows, cols, expected):
    figure = image_grid(solid_images(num_images), num_rows=rows, num_cols=cols)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == expected[0] * expected[1]
    assert figure.axes[0].get_gridspec().get_geometry() == expected
    assert images_shown(figure) == num_images


def test_image_grid_shows_tensors_and_saves(tmp_path):
    images = keras.ops.convert_to_tensor(solid_images(4))
    figure = image_grid(images, path=tmp_path / "plots" / "grid.png", title="generated")
    assert figure.get_suptitle() == "generated"
    shown = figure.axes[3].images[0].get_array()
    np.testing.assert_array_equal(shown, to_uint8(solid_images(4)[3]))
    with Image.open(tmp_path / "plots" / "grid.png") as png:
        assert png.format == "PNG" and png.size[0] > 0


@pytest.mark.parametrize("images, message", [
    (np.zeros((0, 4, 4, 3)), "number_of_images >= 1"),
    (np.zeros((4, 4, 3)), r"got \(4, 4, 3\)"),
    (np.zeros((2, 4, 4, 1)), "np.repeat"),
])
def test_image_grid_refuses_bad_shapes(images, message):
    with pytest.raises(ValueError, match=message):
        image_grid(images)


def test_image_grid_refuses_a_grid_too_small():
    with pytest.raises(ValueError, match="2 rows x 2 columns cannot hold 5 images"):
        image_grid(solid_images(5), num_rows=2, num_cols=2)


def test_save_image_grid_writes_the_exact_pixels(tmp_path):
    images = solid_images(5, height=4, width=6)
    path = save_image_grid(images, tmp_path / "grid.png", num_cols=3)
    with Image.open(path) as png:
        assert png.size == (3 * 6, 2 * 4)  # (width, height)
        pixels = np.asarray(png.convert("RGB"))
    expected_levels = [[0, 51, 102], [153, 204, 0]]  # 51 * i; the sixth cell is empty
    for row in range(2):
        for col in range(3):
            cell = pixels[row * 4:(row + 1) * 4, col * 6:(col + 1) * 6]
            np.testing.assert_array_equal(cell, expected_levels[row][col])
    np.testing.assert_array_equal(pixels, tile_images(images, num_cols=3))


def cosine_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
    """The DDIM text's schedule, written with keras.ops so it returns backend tensors."""
    start_angle = math.acos(max_signal_rate)
    end_angle = math.acos(min_signal_rate)
    angles = start_angle + diffusion_times * (end_angle - start_angle)
    return keras.ops.sin(angles), keras.ops.cos(angles)


def test_plot_schedule_draws_both_rates():
    figure = plot_schedule(cosine_schedule, num_points=11)
    (ax,) = figure.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(lines) == ["noise rate", "signal rate"]
    diffusion_times = np.linspace(0.0, 1.0, 11, dtype="float32")
    noise_rates, signal_rates = cosine_schedule(diffusion_times)
    for label, rates in (("noise rate", noise_rates), ("signal rate", signal_rates)):
        np.testing.assert_array_equal(lines[label].get_xdata(), diffusion_times)
        np.testing.assert_allclose(lines[label].get_ydata(), np.asarray(rates), rtol=1e-6)
    assert ax.get_xlabel() == "diffusion time"


def test_plot_schedule_refuses_a_schedule_of_the_wrong_size():
    with pytest.raises(ValueError, match="one rate per diffusion time"):
        plot_schedule(lambda times: (times[:3], times[:3]))
    with pytest.raises(ValueError, match="num_points=1"):
        plot_schedule(cosine_schedule, num_points=1)


def test_plot_ddpm_rates(tmp_path):
    alphas_cumprod = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))
    figure = plot_ddpm_rates(alphas_cumprod, path=tmp_path / "rates.png")
    noise_line, signal_line = figure.axes[0].get_lines()
    np.testing.assert_array_equal(signal_line.get_xdata(), np.arange(1000))
    np.testing.assert_allclose(signal_line.get_ydata(), np.sqrt(alphas_cumprod))
    np.testing.assert_allclose(noise_line.get_ydata(), np.sqrt(1.0 - alphas_cumprod))
    assert (tmp_path / "rates.png").is_file()
    with pytest.raises(ValueError, match="not the betas"):
        plot_ddpm_rates(-np.linspace(1e-4, 0.02, 1000))


def test_denoising_strip_labels_rows_and_columns():
    noisy, predicted = solid_images(4), solid_images(4)[::-1]
    figure = denoising_strip([noisy, predicted], row_labels=["noisy", "predicted"],
                             column_labels=[f"t = {t}" for t in (0, 300, 600, 999)])
    assert len(figure.axes) == 8 and images_shown(figure) == 8
    assert [ax.get_ylabel() for ax in figure.axes[::4]] == ["noisy", "predicted"]
    assert figure.axes[3].get_title() == "t = 999"


def test_denoising_strip_leaves_short_rows_blank_and_checks_labels():
    figure = denoising_strip([solid_images(4), solid_images(2)])
    assert len(figure.axes) == 8 and images_shown(figure) == 6
    with pytest.raises(ValueError, match="3 column_labels were given for 4 columns"):
        denoising_strip([solid_images(4)], column_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="no rows"):
        denoising_strip([])
    with pytest.raises(ValueError, match=r"rows_of_images\[1\]"):
        denoising_strip([solid_images(2), np.zeros((2, 4, 4))])


def test_write_gif_has_one_frame_per_image(tmp_path):
    frames = list(solid_images(5))
    path = write_gif(frames, tmp_path / "gifs" / "sampling.gif", duration_ms=40)
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        assert gif.size == (6, 4)
        gif.seek(4)
        assert gif.info["duration"] == 40


def test_write_gif_tiles_batches_into_frames(tmp_path):
    frames = [solid_images(4) + step / 50 for step in range(3)]
    with Image.open(write_gif(frames, tmp_path / "grid.gif")) as gif:
        assert gif.n_frames == 3
        assert gif.size == (2 * 6, 2 * 4)


def test_write_gif_labels_and_enlarges_every_frame(tmp_path):
    frames = [solid_images(4) for _ in range(3)]
    path = write_gif(frames, tmp_path / "training.gif", labels=["epoch 1", "epoch 2", "epoch 3"],
                     num_cols=4, scale=3, gap=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        assert gif.size == (4 * 6 * 3 + 3 * 2, 4 * 3 + LABEL_HEIGHT)
        for index in range(3):
            gif.seek(index)
            band = np.asarray(gif.convert("RGB"))[:LABEL_HEIGHT]
            assert (band < 100).all(axis=-1).sum() > 20  # dark text on the white band
    with pytest.raises(ValueError, match="2 labels were given for 3 frames"):
        write_gif(frames, tmp_path / "bad.gif", labels=["epoch 1", "epoch 2"])


def test_write_gif_refuses_empty_or_mixed_frames(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_gif([], tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="one size"):
        write_gif([solid_images(1)[0], solid_images(4)], tmp_path / "mixed.gif")
    assert not list(tmp_path.iterdir())


def test_plot_schedules_draws_each_schedule_in_both_panels(tmp_path):
    def quarter_circle(times):  # n = sin(πt/2), s = cos(πt/2)
        return np.sin(np.pi * times / 2), np.cos(np.pi * times / 2)

    def straight(times):
        return times, 1.0 - times

    figure = plot_schedules({"circle": quarter_circle, "straight": straight}, num_points=5,
                            path=tmp_path / "schedules.png")
    noise_ax, signal_ax = figure.axes
    assert [line.get_label() for line in signal_ax.lines] == ["circle", "straight"]
    times = np.linspace(0, 1, 5)
    np.testing.assert_allclose(noise_ax.lines[0].get_ydata(), np.sin(np.pi * times / 2))
    np.testing.assert_allclose(signal_ax.lines[1].get_ydata(), 1.0 - times)
    assert (tmp_path / "schedules.png").stat().st_size > 0


def test_plot_kid_vs_evaluations_draws_one_sorted_line_per_sampler(tmp_path):
    rows = [{"sampler": "ddim", "network_evaluations": 8, "kid": 0.2},
            {"sampler": "ddim", "network_evaluations": 2, "kid": 0.9},
            {"sampler": "second order", "network_evaluations": 4, "kid": 0.5},
            {"sampler": "second order", "network_evaluations": 16, "kid": 0.1}]
    rows = [{**row, "kid_features": "offline statistics"} for row in rows]
    figure = plot_kid_vs_evaluations(rows, path=tmp_path / "kid.png")
    (ax,) = figure.axes
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
             for line in ax.lines}
    assert lines == {"ddim": ([2, 8], [0.9, 0.2]), "second order": ([4, 16], [0.5, 0.1])}
    assert ax.get_xscale() == "log" and "offline statistics" in ax.get_ylabel()
    with pytest.raises(ValueError, match="no rows"):
        plot_kid_vs_evaluations([])
def test_tile_images_enlarges_pixels_and_separates_images_with_white_gaps():
    images = np.array([[[[0.0, 0.0, 0.0]]], [[[1.0, 0.0, 0.0]]], [[[0.0, 0.0, 1.0]]]], "float32")
    black, red, blue, white = [0, 0, 0], [255, 0, 0], [0, 0, 255], [255, 255, 255]
    expected = np.array([[black, black, white, red, red],
                         [black, black, white, red, red],
                         [white, white, white, white, white],
                         [blue, blue, white, black, black],
                         [blue, blue, white, black, black]], "uint8")
    np.testing.assert_array_equal(tile_images(images, num_cols=2, scale=2, gap=1), expected)
    with pytest.raises(ValueError, match="scale=0"):
        tile_images(images, scale=0)
    with pytest.raises(ValueError, match="gap=-1"):
        tile_images(images, gap=-1)


def test_figures_show_themselves_in_a_notebook_exactly_once_without_pyplot():
    from IPython.core.formatters import DisplayFormatter

    for figure in (image_grid(solid_images(4)), plot_schedule(lambda times: (times, 1 - times)),
                   plot_training_curves({"n_loss": [0.5, 0.3]})):
        data, _ = DisplayFormatter().format(figure)
        assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert "image/png" not in DisplayFormatter().format(Figure())[0]  # a plain Figure is not


def test_training_curves_draw_each_loss_once_and_the_kid_with_its_features():
    history = {"loss": [0.5, 0.3, 0.2], "n_loss": [0.5, 0.3, 0.2], "i_loss": [0.9, 0.6, 0.5],
               "val_kid": [1.0, 0.4, 0.3]}
    figure = plot_training_curves(history, kid_features="offline statistics", title="run")
    loss_axes, kid_axes = figure.axes
    assert [line.get_label() for line in loss_axes.get_lines()] == ["n_loss", "i_loss"]
    np.testing.assert_array_equal(loss_axes.get_lines()[1].get_ydata(), [0.9, 0.6, 0.5])
    np.testing.assert_array_equal(kid_axes.get_lines()[0].get_xdata(), [1, 2, 3])
    assert "offline statistics" in kid_axes.get_title()
    assert len(plot_training_curves({"loss": [0.5], "n_loss": [0.4]}).axes[0].get_lines()) == 2
    assert len(plot_training_curves({"n_loss": [0.5, 0.3]}).axes) == 1  # no KID measured
    with pytest.raises(ValueError, match="no losses"):
        plot_training_curves({"val_kid": [1.0]})
