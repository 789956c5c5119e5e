"""Hugging Face diffusers' DDIMScheduler.step and DDPMScheduler.step, transcribed to float64 numpy.

diffusers needs PyTorch, which would add minutes and a gigabyte to every CI run, so the tests
compare against this transcription of diffusers 0.42.1 (schedulers/scheduling_ddim.py and
scheduling_ddpm.py; the numbered comments are theirs). test_diffusers_fixture.py checks it in
every run against the schedulers' own outputs, stored in tests/data/diffusers_steps.npz by
diffusers_fixture.py; test_diffusers_transcription.py reruns the real schedulers wherever
diffusers is installed.

`alpha_prod_t` is ᾱ_t at the current timestep and `alpha_prod_t_prev` at the next (less noisy)
one; `prediction_type` is "epsilon", "sample" or "v_prediction"; no clipping or thresholding.
"""


def predicted_original_and_epsilon(model_output, sample, alpha_prod_t, prediction_type):
    beta_prod_t = 1 - alpha_prod_t
    if prediction_type == "epsilon":
        pred_original_sample = ((sample - beta_prod_t ** (0.5) * model_output)
                                / alpha_prod_t ** (0.5))
        pred_epsilon = model_output
    elif prediction_type == "sample":
        pred_original_sample = model_output
        pred_epsilon = ((sample - alpha_prod_t ** (0.5) * pred_original_sample)
                        / beta_prod_t ** (0.5))
    elif prediction_type == "v_prediction":
        pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
    else:
        raise ValueError(prediction_type)
    return pred_original_sample, pred_epsilon


def ddim_step(model_output, sample, alpha_prod_t, alpha_prod_t_prev, eta, variance_noise,
              prediction_type="epsilon"):
    """DDIMScheduler.step: returns (prev_sample, pred_original_sample)."""
    # 2. compute alphas, betas
    beta_prod_t = 1 - alpha_prod_t
    # 3. compute predicted original sample ("predicted x_0" of formula (12))
    pred_original_sample, pred_epsilon = predicted_original_and_epsilon(
        model_output, sample, alpha_prod_t, prediction_type)
    # 5. compute variance: "sigma_t(η)" -> see formula (16) (DDIMScheduler._get_variance)
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
    std_dev_t = eta * variance ** (0.5)
    # 6. compute "direction pointing to x_t" of formula (12)
    pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_epsilon
    # 7. compute x_t without "random noise" of formula (12)
    prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
    if eta > 0:
        prev_sample = prev_sample + std_dev_t * variance_noise
    return prev_sample, pred_original_sample


def ddpm_step(model_output, sample, alpha_prod_t, alpha_prod_t_prev, variance_noise,
              variance_type="fixed_small", prediction_type="epsilon"):
    """DDPMScheduler.step for t > 0: returns (prev_sample, pred_original_sample)."""
    # 1. compute alphas, betas
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    current_alpha_t = alpha_prod_t / alpha_prod_t_prev
    current_beta_t = 1 - current_alpha_t
    # 2. compute predicted original sample from predicted noise, formula (15)
    pred_original_sample, _ = predicted_original_and_epsilon(
        model_output, sample, alpha_prod_t, prediction_type)
    # 4. coefficients for pred_original_sample x_0 and current sample x_t, formula (7)
    pred_original_sample_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
    current_sample_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
    # 5. compute predicted previous sample µ_t, formula (7)
    pred_prev_sample = (pred_original_sample_coeff * pred_original_sample
                        + current_sample_coeff * sample)
    # 6. add noise (DDPMScheduler._get_variance)
    variance = max((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, 1e-20)
    if variance_type == "fixed_large":
        variance = current_beta_t
    elif variance_type != "fixed_small":
        raise ValueError(variance_type)
    return pred_prev_sample + variance ** 0.5 * variance_noise, pred_original_sample
