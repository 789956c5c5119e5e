"""One configuration object per model, with named profiles.

`full` is the course's real setting (a GPU is expected); `quick` is sized so that a few dozen
training steps plus sampling take seconds on a 2-core CPU. Every value is checked when the
object is made, so a bad hyperparameter fails here with a clear message instead of deep inside
a training step.

    config = DDIMConfig.from_profile("quick", batch_size=8)
"""

import dataclasses
import math
import os
from dataclasses import dataclass

PROFILES = ("full", "quick")
# the DDIM design space, by name. They are listed here rather than imported from the modules that
# implement them (schedules.py, parametrizations.py, losses.py), because graded runs hide the
# first two from student code and the configuration must load there too; tests keep them equal.
SCHEDULE_NAMES = ("assignment-cosine", "linear", "cosine", "log-snr-linear", "log-noise-linear",
                  "log-signal-linear", "noise-step-linear", "signal-step-linear")
PREDICTIONS = ("noise", "image", "velocity")
LOSS_WEIGHTINGS = ("noise", "image", "velocity")
LOSSES = ("mae", "mse")
# the continuous-time DDIM model's samplers (continuous_samplers.py), by name, and their bounds:
# here too, so that the command line can offer them without importing Keras before --help
CONTINUOUS_SAMPLER_NAMES = ("ddim", "ddpm-vp", "ddpm-large", "second-order", "multistep")
# the step tables are padded to this length, so any number of steps up to it shares one loop
MAX_DIFFUSION_STEPS = 1000
# order 5 is not offered: measured on whole runs (tests/test_continuous_samplers.py), its errors
# reach float64 round-off (about 1e-12) at 256-512 steps, before the runs converge with order 5
# (4.3-5.5 measured), so the order cannot be verified, and in float32 it cannot be had at all
MAX_MULTISTEP_ORDER = 4


class ConfigError(ValueError):
    """A hyperparameter is outside its allowed range."""


def default_profile():
    """`full` on a machine with a GPU, `quick` otherwise; `DIFFUSION_PROFILE` overrides both."""
    requested = os.environ.get("DIFFUSION_PROFILE")
    if requested:
        if requested not in PROFILES:
            raise ConfigError(
                f"DIFFUSION_PROFILE={requested!r} is not a profile; expected one of {PROFILES}. "
                "Set it to one of them, or unset it to choose by the machine."
            )
        return requested
    from diffusion_course.devices import has_gpu

    return "full" if has_gpu() else "quick"


def _require(condition, field, value, allowed):
    if not condition:
        raise ConfigError(f"{field}={value!r} is invalid: it must be {allowed}.")


class _ProfileMixin:
    """Shared constructors and checks for the configuration dataclasses."""

    _profiles: dict = {}

    @classmethod
    def from_profile(cls, profile="full", **overrides):
        if profile not in cls._profiles:
            raise ConfigError(f"profile={profile!r} is unknown: it must be one of {PROFILES}.")
        unknown = set(overrides) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no field(s) {sorted(unknown)}; "
                f"valid fields are {[field.name for field in dataclasses.fields(cls)]}."
            )
        values = {**cls._profiles[profile], "profile": profile, **overrides}
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ConfigError(f"{cls.__name__} has no field(s) {sorted(unknown)}.")
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in values.items()})

    def _check_common(self):
        _require(self.profile in PROFILES, "profile", self.profile, f"one of {PROFILES}")
        _require(isinstance(self.image_size, int) and self.image_size > 0,
                 "image_size", self.image_size, "a positive integer")
        _require(len(self.widths) > 0 and all(isinstance(w, int) and w > 0 for w in self.widths),
                 "widths", self.widths, "a non-empty sequence of positive integers")
        _require(isinstance(self.batch_size, int) and self.batch_size >= 2,
                 "batch_size", self.batch_size, "an integer >= 2")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        _require(0.0 <= self.ema < 1.0, "ema", self.ema, "in [0, 1)")
        _require(isinstance(self.num_epochs, int) and self.num_epochs >= 1,
                 "num_epochs", self.num_epochs, "an integer >= 1")
        _require(self.jit_compile in ("auto", True, False), "jit_compile", self.jit_compile,
                 '"auto", True or False')
        _require(self.mixed_precision in ("auto", True, False), "mixed_precision",
                 self.mixed_precision, '"auto", True or False')


@dataclass(frozen=True)
class DDIMConfig(_ProfileMixin):
    """Continuous-time DDIM with the residual U-Net (the Keras DDIM text and the assignment)."""

    profile: str = "full"
    # data
    image_size: int = 64
    dataset_repetitions: int = 5
    num_epochs: int = 50
    # noise schedule (schedules.py): the assignment's cosine runs from max_signal_rate (t=0) to
    # min_signal_rate (t=1); every other schedule from start_log_snr to end_log_snr
    schedule: str = "assignment-cosine"
    min_signal_rate: float = 0.02
    max_signal_rate: float = 0.95
    start_log_snr: float = 2.5
    end_log_snr: float = -7.5
    # what the network predicts, and which error training minimises with which loss function
    # (parametrizations.py, losses.py); the assignment predicts noise and minimises its MAE
    prediction: str = "noise"
    loss_weighting: str = "noise"
    loss: str = "mae"
    # architecture
    embedding_dims: int = 32
    embedding_max_frequency: float = 1000.0
    widths: tuple = (32, 64, 96, 128)
    block_depth: int = 2
    # optimization
    batch_size: int = 64
    ema: float = 0.999
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    # KID = Kernel Inception Distance
    kid_image_size: int = 75
    kid_diffusion_steps: int = 5
    plot_diffusion_steps: int = 20
    # speed: XLA compilation of the train step and float16 compute in the networks ("auto": on
    # where they help, see devices.py)
    jit_compile: object = "auto"
    mixed_precision: object = "auto"

    def __post_init__(self):
        self._check_common()
        _require(0.0 < self.min_signal_rate < self.max_signal_rate <= 1.0,
                 "min_signal_rate/max_signal_rate", (self.min_signal_rate, self.max_signal_rate),
                 "0 < min_signal_rate < max_signal_rate <= 1 (0 would divide by zero in denoise)")
        _require(self.schedule in SCHEDULE_NAMES, "schedule", self.schedule,
                 f"one of {SCHEDULE_NAMES}")
        _require(isinstance(self.start_log_snr, (int, float))
                 and isinstance(self.end_log_snr, (int, float))
                 and math.isfinite(self.start_log_snr) and math.isfinite(self.end_log_snr)
                 and self.start_log_snr > self.end_log_snr,
                 "start_log_snr/end_log_snr", (self.start_log_snr, self.end_log_snr),
                 "finite numbers with start_log_snr > end_log_snr (t=0 is the clean end)")
        _require(self.prediction in PREDICTIONS, "prediction", self.prediction,
                 f"one of {PREDICTIONS}")
        _require(self.loss_weighting in LOSS_WEIGHTINGS, "loss_weighting", self.loss_weighting,
                 f"one of {LOSS_WEIGHTINGS} (the error that training minimises, whatever the "
                 "network predicts)")
        _require(self.loss in LOSSES, "loss", self.loss, f"one of {LOSSES}")
        _require(isinstance(self.embedding_dims, int) and self.embedding_dims >= 2
                 and self.embedding_dims % 2 == 0,
                 "embedding_dims", self.embedding_dims, "an even integer >= 2")
        _require(self.embedding_max_frequency > 1.0, "embedding_max_frequency",
                 self.embedding_max_frequency, "> 1 (the minimum frequency is 1)")
        _require(isinstance(self.block_depth, int) and self.block_depth >= 1,
                 "block_depth", self.block_depth, "an integer >= 1")
        _require(len(self.widths) >= 2, "widths", self.widths, "at least two widths")
        levels = len(self.widths) - 1
        _require(self.image_size % 2**levels == 0, "image_size", self.image_size,
                 f"divisible by 2**{levels} = {2**levels} (one halving per width but the last)")
        _require(self.kid_diffusion_steps >= 1, "kid_diffusion_steps",
                 self.kid_diffusion_steps, ">= 1")
        _require(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _require(self.dataset_repetitions >= 1, "dataset_repetitions",
                 self.dataset_repetitions, ">= 1")


DDIMConfig._profiles = {
    "full": {},
    "quick": dict(
        image_size=16, widths=(16, 32), block_depth=1, batch_size=16, dataset_repetitions=1,
        num_epochs=2, embedding_dims=16, learning_rate=3e-3, kid_diffusion_steps=3,
        plot_diffusion_steps=5, ema=0.99,
    ),
}


@dataclass(frozen=True)
class DDPMConfig(_ProfileMixin):
    """Discrete-time DDPM with the attention U-Net (the lab)."""

    profile: str = "full"
    # data
    image_size: int = 64
    num_epochs: int = 1
    # diffusion: linear betas over `timesteps` steps (DDPM paper, section 4)
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    clip_min: float = -1.0
    clip_max: float = 1.0
    # architecture
    widths: tuple = (64, 128, 256, 512)
    has_attention: tuple = (False, False, True, True)
    num_res_blocks: int = 2
    norm_groups: int = 8
    # optimization
    batch_size: int = 32
    learning_rate: float = 2e-4
    ema: float = 0.999
    jit_compile: object = "auto"
    mixed_precision: object = "auto"

    @property
    def first_conv_channels(self):
        return self.widths[0]

    @property
    def time_embedding_dims(self):
        return 4 * self.widths[0]

    def __post_init__(self):
        self._check_common()
        _require(isinstance(self.timesteps, int) and self.timesteps >= 2,
                 "timesteps", self.timesteps, "an integer >= 2")
        _require(0.0 < self.beta_start < self.beta_end < 1.0, "beta_start/beta_end",
                 (self.beta_start, self.beta_end), "0 < beta_start < beta_end < 1")
        _require(self.clip_min < self.clip_max, "clip_min/clip_max",
                 (self.clip_min, self.clip_max), "clip_min < clip_max")
        _require(len(self.has_attention) == len(self.widths), "has_attention",
                 self.has_attention, f"one flag per width ({len(self.widths)})")
        _require(isinstance(self.num_res_blocks, int) and self.num_res_blocks >= 1,
                 "num_res_blocks", self.num_res_blocks, "an integer >= 1")
        _require(self.norm_groups >= 1 and all(w % self.norm_groups == 0 for w in self.widths),
                 "norm_groups", self.norm_groups, f"a divisor of every width {self.widths}")
        levels = len(self.widths) - 1
        _require(self.image_size % 2**levels == 0, "image_size", self.image_size,
                 f"divisible by 2**{levels} = {2**levels} (one halving per width but the last)")


DDPMConfig._profiles = {
    "full": {},
    "quick": dict(
        image_size=16, widths=(16, 32), has_attention=(False, True), num_res_blocks=1,
        norm_groups=4, batch_size=16, learning_rate=1e-3, ema=0.99,
    ),
}

