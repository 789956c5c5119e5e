"""What training minimises: the loss weighting (which error) and the loss function (how).

The network may predict the noise ε, the image x0 or the velocity v (parametrizations.py), but
from any one of them and the noisy image the other two follow. So the error that training
minimises is a separate choice, the loss weighting:

- "noise":    the error of ε̂, as in DDPM and the DDIM text;
- "image":    the error of x̂0, which is (n/s)·(error of ε̂): n²/s² times the noise loss's weight
              under MSE, so it stresses the clean end of the diffusion;
- "velocity": the error of v̂ = s·ε̂ − n·x̂0, which is (1/s)·(error of ε̂) (Salimans & Ho 2022,
              section 4).

The loss function is "mae" (what the DDIM text recommends on flowers) or "mse". The model tracks
all three errors with it, as `n_loss`, `i_loss` and `v_loss`, and minimises one.

This module is not hidden from graded runs (schedules.py and parametrizations.py are): the
assignment's model trains with it, and it holds none of the students' functions.
"""

from keras import ops

LOSS_FUNCTIONS = {
    "mae": lambda true, predicted: ops.mean(ops.abs(true - predicted)),
    "mse": lambda true, predicted: ops.mean(ops.square(true - predicted)),
}
# the name of each error's metric, in the order the losses are reported
LOSS_NAMES = {"noise": "n_loss", "image": "i_loss", "velocity": "v_loss"}


def velocities(images, noises, noise_rates, signal_rates):
    """v = s·ε − n·x0: the rate of change of x = s·x0 + n·ε along the angle whose cosine is s
    (Salimans & Ho 2022, section 4)."""
    return signal_rates * noises - noise_rates * images


def diffusion_losses(images, noises, pred_images, pred_noises, noise_rates, signal_rates, loss):
    """{"noise", "image", "velocity": the loss function `loss` of that error}, scalars."""
    loss_function = LOSS_FUNCTIONS[loss]
    return {
        "noise": loss_function(noises, pred_noises),
        "image": loss_function(images, pred_images),
        "velocity": loss_function(velocities(images, noises, noise_rates, signal_rates),
                                  velocities(pred_images, pred_noises, noise_rates, signal_rates)),
    }
