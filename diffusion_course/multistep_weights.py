"""The coefficients of the multistep sampler: Adams–Bashforth in λ = log(s/n), for any steps.

The probability-flow ODE, written for the network's image prediction x̂0 in the variable
λ = log(signal_rate / noise_rate), has the exact solution (Lu et al. 2022, DPM-Solver++,
arXiv:2211.01095, eq. 9)

    x' = (n'/n)·x + n'·∫_λ^λ' e^μ·x̂0(μ) dμ.

With x̂0 constant over the step the integral is s'·(1 − e^−h), h = λ' − λ, and the step is
deterministic DDIM (DDIM eq. 12). A multistep method of order k replaces x̂0(μ) by the
polynomial through the last k predictions (λ_j, x̂0_j) and integrates it exactly: the
Adams–Bashforth idea, with coefficients computed for each step from its actual λ's, because the
steps of a schedule are not equal in λ. Each step's update is then the DDIM step with the
weighted average x̃0 = Σ_j c_j·x̂0_j in place of x̂0, where

    c_j = ∫_λ^λ' e^(μ−λ') L_j(μ) dμ / ∫_λ^λ' e^(μ−λ') dμ,   L_j the Lagrange basis polynomials,

so Σ_j c_j = 1, and one prediction (order 1) gives c = [1]: DDIM.
"""

import numpy as np

# Gauss–Legendre nodes on [0, 1], exact for polynomials of degree 47: the integrands are a
# polynomial of degree ≤ 4 times e^(h·(v − 1)), whose Taylor terms beyond degree 43 are below
# float64 round-off for steps up to h = 5, the whole λ range of the default log-SNR bounds
QUADRATURE_NODES, QUADRATURE_WEIGHTS = np.polynomial.legendre.leggauss(24)
QUADRATURE_NODES = (QUADRATURE_NODES + 1.0) / 2.0
QUADRATURE_WEIGHTS = QUADRATURE_WEIGHTS / 2.0


def half_log_snrs(noise_rates, signal_rates):
    """λ = log(s/n), +∞ where there is no noise (n = 0)."""
    with np.errstate(divide="ignore"):
        return np.log(signal_rates) - np.log(noise_rates)


def lagrange_basis(nodes, points):
    """L_j(points) for the polynomial through `nodes`: an array (len(nodes), len(points))."""
    basis = np.ones((len(nodes), len(points)))
    for j, node in enumerate(nodes):
        for other in np.delete(nodes, j):
            basis[j] *= (points - other) / (node - other)
    return basis


def step_weights(past_log_snrs, log_snr, next_log_snr):
    """c_j for the step from λ to λ' with predictions at `past_log_snrs` (oldest first, the last
    one λ itself), as in the module's docstring; exponential weight e^(μ−λ') over [λ, λ']."""
    step = next_log_snr - log_snr
    points = log_snr + step * QUADRATURE_NODES
    exponential = QUADRATURE_WEIGHTS * np.exp(step * (QUADRATURE_NODES - 1.0))
    return lagrange_basis(np.asarray(past_log_snrs), points) @ exponential / exponential.sum()


def multistep_weights(log_snrs, next_log_snrs, order):
    """The weights of every step, one row each, oldest prediction first: step i uses the
    min(i + 1, order) predictions it has, and zeros stand for the missing ones."""
    weights = np.zeros((len(log_snrs), order))
    for step_index in range(len(log_snrs)):
        used = min(step_index + 1, order)
        weights[step_index, order - used:] = step_weights(
            log_snrs[step_index + 1 - used:step_index + 1], log_snrs[step_index],
            next_log_snrs[step_index])
    return weights


def start_up_times(log_snr_at, diffusion_steps, order):
    """Diffusion times 1 = t_0 > t_1 > ... > t_N = 0 for a run of order k = `order`, where
    `log_snr_at(times)` gives λ = log(s/n) of the schedule.

    After the start-up, the steps are equal in t, as DDIM's. The first k − 1 steps have fewer
    than k predictions to use: step j (j = 1 ... k − 1) is of order j, with a local error of
    O(h_j^(j+1)) for its length h_j in λ. A multistep run keeps order k if its first values are
    accurate to O(H^k) (H a regular step), so h_j = H·Δ^(k/(j+1) − 1), with Δ = 1/N and H the
    λ-length of the first regular step, is short enough. The lengths are set in λ, not in t,
    because a schedule can be flat in λ at t = 1 (noise-step-linear), where short steps in t
    would be far shorter in λ and crowd the first predictions together.
    """
    step = 1.0 / diffusion_steps
    start_up_steps = min(order - 1, diffusion_steps - 1)
    if start_up_steps == 0:
        return np.linspace(1.0, 0.0, diffusion_steps + 1)
    fractions = [step ** (order / (j + 1) - 1.0) for j in range(1, start_up_steps + 1)]
    # λ on a fine grid of t, to find the times of the start-up λ's (λ falls as t grows)
    fine_times = np.linspace(1.0, 0.0, 8193)
    fine_log_snrs = log_snr_at(fine_times)
    first_step = np.interp(1.0 - step, fine_times[::-1], fine_log_snrs[::-1]) - fine_log_snrs[0]
    start_up = np.interp(fine_log_snrs[0] + first_step * np.cumsum([0.0, *fractions]),
                         fine_log_snrs, fine_times)
    rest = np.linspace(start_up[-1], 0.0, diffusion_steps - start_up_steps + 1)
    return np.concatenate([start_up[:-1], rest])
