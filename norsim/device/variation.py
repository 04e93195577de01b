"""Device-to-device variation of V_th, n, beta and DIBL (optionally spatially correlated)
and stuck cells.

Each parameter p gets a standard-normal field z: p = p0 (1 + sigma z) for n and eta,
beta = beta0 exp(sigma z), V_th offset = sigma_vth z. With a correlation length L > 0,
z = sqrt(1 - f) z_white + sqrt(f) z_corr, where z_corr is white noise filtered by a Gaussian
kernel of standard deviation L cells and rescaled to unit variance (f = correlated_fraction).
Stuck cells: STUCK_ON cells stay erased, STUCK_OFF cells sit at vth_max_v.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from norsim.device.config import CellConfig, VariationConfig
from norsim.device.iv import BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C, CellModel
from norsim.errors import InputError

STUCK_NONE, STUCK_ON, STUCK_OFF = 0, 1, 2
K_V_PER_K = BOLTZMANN_J_PER_K / ELEMENTARY_CHARGE_C  # U_T / T


@dataclass
class CellVariation:
    """Per-cell device parameters of a population (arrays of the population's shape).

    ``n`` is each cell's slope factor at ``t_ref_k``; at another temperature it is scaled by
    1 + ``n_tempco_per_k`` (T - t_ref_k). ``dvth_dt_v_per_k`` (None: 0) is each cell's
    deviation from the nominal V_th temperature coefficient: its V_th shift delta (T - t_ref_k)
    enters the current as the weak-inversion factor exp(-alpha_G delta (T - t_ref_k) / (n U_T))
    on beta (exact in subthreshold, where I ~ I_S exp(alpha_G (V_cg - V_th) / (n U_T)))."""

    vth_offset_v: np.ndarray
    n: np.ndarray
    beta_factor: np.ndarray
    dibl_eta: np.ndarray
    stuck: np.ndarray  # int8: STUCK_NONE / STUCK_ON / STUCK_OFF
    dvth_dt_v_per_k: np.ndarray | None = None
    t_ref_k: float = 300.0
    n_tempco_per_k: float = 0.0

    def iv_kwargs(self, model: CellModel) -> dict:
        """Per-cell keyword arguments of :meth:`CellModel.current` at the model's temperature."""
        dt = model.fg.u_t / K_V_PER_K - self.t_ref_k
        n = self.n if dt == 0.0 or self.n_tempco_per_k == 0.0 else \
            np.maximum(self.n * (1.0 + self.n_tempco_per_k * dt), 1.0)
        beta = model.fg.beta * self.beta_factor
        if self.dvth_dt_v_per_k is not None and dt != 0.0:
            beta = beta * np.exp(-model.fg.alpha_g * self.dvth_dt_v_per_k * dt / (n * model.fg.u_t))
        return {"n": n, "beta": beta, "dibl_eta": self.dibl_eta}

    def take(self, index) -> "CellVariation":
        d = None if self.dvth_dt_v_per_k is None else self.dvth_dt_v_per_k[index]
        return CellVariation(self.vth_offset_v[index], self.n[index], self.beta_factor[index],
                             self.dibl_eta[index], self.stuck[index], d, self.t_ref_k,
                             self.n_tempco_per_k)


def _kernel_variance(length: float) -> float:
    half = int(np.ceil(6 * length)) + 1
    delta = np.zeros(2 * half + 1)
    delta[half] = 1.0
    k = ndimage.gaussian_filter1d(delta, length, mode="constant", truncate=6.0)
    return float(np.sum(k**2))


def normal_field(rng: np.random.Generator, shape, length: float, fraction: float) -> np.ndarray:
    """Unit-variance Gaussian field; a fraction of the variance correlated over ``length``."""
    z = rng.standard_normal(shape)
    if length <= 0 or fraction <= 0:
        return z
    shape2 = shape if len(shape) >= 2 else (1,) + tuple(shape)
    w = rng.standard_normal(shape2)
    sig = (0.0,) * (len(shape2) - 2) + (length, length)
    if len(shape) < 2:
        sig = (0.0, length)
    c = ndimage.gaussian_filter(w, sigma=sig, mode="wrap", truncate=6.0)
    var = _kernel_variance(length) ** (2 if len(shape) >= 2 else 1)
    c = (c / np.sqrt(var)).reshape(shape)
    return np.sqrt(1.0 - fraction) * z + np.sqrt(fraction) * c


def draw_variation(rng: np.random.Generator, shape, var: VariationConfig,
                   cell: CellConfig) -> CellVariation:
    """Draw the device-to-device parameters of ``shape`` cells."""
    shape = tuple(np.atleast_1d(shape).astype(int))
    if any(s <= 0 for s in shape):
        raise InputError("shape", shape, "positive dimensions")
    if var.stuck_on_fraction + var.stuck_off_fraction > 1.0:
        raise InputError("device.variation.stuck_on_fraction", var.stuck_on_fraction,
                         "stuck_on_fraction + stuck_off_fraction <= 1")
    L, f = var.correlation_length_cells, var.correlated_fraction
    vth = var.vth_sigma_v * normal_field(rng, shape, L, f)
    n = cell.slope_factor_n * (1.0 + var.n_sigma_rel * normal_field(rng, shape, L, f))
    n = np.maximum(n, 1.0)  # n >= 1 physically
    beta_factor = np.exp(var.beta_sigma_rel * normal_field(rng, shape, L, f))
    eta = cell.dibl_eta * (1.0 + var.dibl_sigma_rel * normal_field(rng, shape, L, f))
    eta = np.maximum(eta, 0.0)
    u = rng.random(shape)
    stuck = np.full(shape, STUCK_NONE, dtype=np.int8)
    stuck[u < var.stuck_on_fraction] = STUCK_ON
    stuck[(u >= var.stuck_on_fraction) & (u < var.stuck_on_fraction + var.stuck_off_fraction)] = STUCK_OFF
    dvdt = None
    if var.dvth_dt_sigma_v_per_k > 0:  # drawn last: the draws above keep their stream
        dvdt = var.dvth_dt_sigma_v_per_k * normal_field(rng, shape, L, f)
    return CellVariation(vth, n, beta_factor, eta, stuck, dvdt, cell.t_ref_k, cell.n_tempco_per_k)


def no_variation(shape, cell: CellConfig) -> CellVariation:
    """Nominal parameters for every cell (no variation, no stuck cells)."""
    shape = tuple(np.atleast_1d(shape).astype(int))
    return CellVariation(np.zeros(shape), np.full(shape, cell.slope_factor_n), np.ones(shape),
                         np.full(shape, cell.dibl_eta), np.zeros(shape, dtype=np.int8), None,
                         cell.t_ref_k, cell.n_tempco_per_k)
