import pytest

from diffusion_course.config import ConfigError, DDIMConfig, DDPMConfig, default_profile


def test_full_profile_is_the_course_setting():
    ddim = DDIMConfig.from_profile("full")
    assert (ddim.image_size, ddim.widths, ddim.block_depth) == (64, (32, 64, 96, 128), 2)
    assert (ddim.batch_size, ddim.learning_rate, ddim.weight_decay) == (64, 1e-3, 1e-4)
    assert (ddim.ema, ddim.min_signal_rate, ddim.max_signal_rate) == (0.999, 0.02, 0.95)
    assert DDIMConfig.from_profile("quick").ema == DDPMConfig.from_profile("quick").ema == 0.99
    assert (ddim.embedding_dims, ddim.embedding_max_frequency) == (32, 1000.0)
    ddpm = DDPMConfig.from_profile("full")
    assert (ddpm.widths, ddpm.has_attention) == ((64, 128, 256, 512), (False, False, True, True))
    assert (ddpm.batch_size, ddpm.learning_rate, ddpm.timesteps) == (32, 2e-4, 1000)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(min_signal_rate=0.0), "min_signal_rate"),
        (dict(min_signal_rate=0.96), "min_signal_rate"),
        (dict(max_signal_rate=1.5), "max_signal_rate"),
        (dict(widths=(32, 0, 64)), "widths"),
        (dict(widths=(32, -4)), "widths"),
        (dict(image_size=60), "image_size"),
        (dict(embedding_dims=31), "embedding_dims"),
        (dict(block_depth=0), "block_depth"),
        (dict(ema=1.0), "ema"),
        (dict(batch_size=1), "batch_size"),
        (dict(learning_rate=0.0), "learning_rate"),
    ],
)
def test_invalid_ddim_values_name_the_field_and_the_range(overrides, field):
    with pytest.raises(ConfigError) as error:
        DDIMConfig.from_profile("full", **overrides)
    message = str(error.value)
    assert field in message
    assert "must be" in message


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(norm_groups=7), "norm_groups"),
        (dict(has_attention=(True,)), "has_attention"),
        (dict(beta_start=0.03), "beta_start"),
        (dict(image_size=36), "image_size"),
        (dict(timesteps=1), "timesteps"),
    ],
)
def test_invalid_ddpm_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        DDPMConfig.from_profile("full", **overrides)


def test_unknown_profile_and_unknown_field_are_rejected():
    with pytest.raises(ConfigError, match="profile"):
        DDIMConfig.from_profile("huge")
    with pytest.raises(ConfigError, match="learnin_rate"):
        DDIMConfig.from_profile("quick", learnin_rate=1.0)


def test_dict_round_trip():
    config = DDIMConfig.from_profile("quick", batch_size=8)
    assert DDIMConfig.from_dict(config.to_dict()) == config


def test_default_profile_follows_the_environment(monkeypatch):
    monkeypatch.setenv("DIFFUSION_PROFILE", "quick")
    assert default_profile() == "quick"
    monkeypatch.setenv("DIFFUSION_PROFILE", "fast")
    with pytest.raises(ValueError, match="fast"):
        default_profile()
    monkeypatch.delenv("DIFFUSION_PROFILE")
    assert default_profile() == "quick"  # this test machine has no GPU
