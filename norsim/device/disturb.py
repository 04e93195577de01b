"""Program disturb of half-selected cells during array tuning (issue 20, point 3).

A program pulse on cell (r, c) stresses the other cells of word line r (their bit lines
inhibited: gate stress V_s = V_pgm - bl_inhibit_v across the oxide as alpha_G V_s, charge
gain) and of bit line c (word line off: drain stress bl_stress_v, bl_coupling of it across the
oxide, charge loss). Per pulse, Fowler-Nordheim tunnelling (Lenzlinger & Snow 1969):

    E = V_ox / t_ox,  J = A E^2 exp(-B / E) (E > 0; 0 otherwise),
    dV_th = J x tunnel_area x pulse_width / C_CG,  C_CG = q / dv_per_electron

Only pulses after a cell's own final verify move it (earlier ones are verified away). Order:
cells are tuned one at a time in row-major order (row 0 first, columns left to right), each
taking its ISPP staircase V_pgm(i) = ispp_start_v + i ispp_step_v, i < its pulse count
(fine-tuning pulses counted at the staircase). So a cell (r, c) receives the word-line pulses
of cells (r, c' > c) and the bit-line pulses of cells (r' > r, c).
"""

from __future__ import annotations

import numpy as np

from norsim.device.config import DeviceConfig
from norsim.device.iv import ELEMENTARY_CHARGE_C
from norsim.errors import InputError


def dv_per_pulse(v_ox, device: DeviceConfig) -> np.ndarray:
    """|V_th| shift of one pulse with ``v_ox`` across the tunnel oxide (0 at v_ox <= 0)."""
    d, p = device.disturb, device.programming
    v = np.asarray(v_ox, dtype=np.float64)
    e = np.maximum(v, 0.0) / (d.tunnel_oxide_nm * 1e-9)  # V/m
    b = d.fn_b_v_per_cm * 100.0
    pos = e > 0
    j = np.where(pos, d.fn_a_a_per_v2 * e**2 * np.exp(-b / np.where(pos, e, 1.0)), 0.0)
    c_cg = ELEMENTARY_CHARGE_C / p.dv_per_electron_v
    return j * d.tunnel_area_um2 * 1e-12 * p.pulse_width_s / c_cg


def wl_stress_ox_v(v_pgm, device: DeviceConfig):
    """Oxide voltage of a word-line half-selected cell under a pulse at ``v_pgm``."""
    return device.cell.alpha_g * (np.asarray(v_pgm, dtype=np.float64) - device.disturb.bl_inhibit_v)


def bl_stress_ox_v(device: DeviceConfig) -> float:
    """Oxide voltage of a bit-line half-selected cell under a pulse on its column."""
    return device.disturb.bl_coupling * device.disturb.bl_stress_v


def staircase_dose(pulses, device: DeviceConfig) -> np.ndarray:
    """Word-line disturb one neighbour's ``pulses`` ISPP pulses cause: sum over its staircase."""
    p = device.programming
    k = np.asarray(pulses, dtype=np.int64)
    if k.size and k.min() < 0:
        raise InputError("pulses", int(k.min()), "pulse counts >= 0")
    kmax = int(k.max()) if k.size else 0
    v = p.ispp_start_v + p.ispp_step_v * np.minimum(np.arange(kmax), p.max_pulses)
    cum = np.concatenate([[0.0], np.cumsum(dv_per_pulse(wl_stress_ox_v(v, device), device))])
    return cum[k]


def tuning_disturb(pulses, device: DeviceConfig) -> np.ndarray:
    """V_th shift of every cell of a (rows, cols) array from the pulses its row and column
    neighbours receive after its own final verify (row-major tuning order)."""
    k = np.asarray(pulses)
    if k.ndim != 2:
        raise InputError("pulses", k.shape, "a (rows, cols) array of pulse counts")
    wl = staircase_dose(k, device)
    # later cells of the same row: reverse cumulative sum excluding the cell itself
    wl_after = np.cumsum(wl[:, ::-1], axis=1)[:, ::-1] - wl
    bl_after = np.cumsum(k[::-1, :], axis=0)[::-1, :] - k
    return wl_after - float(dv_per_pulse(bl_stress_ox_v(device), device)) * bl_after


def tuning_disturb_loops(pulses, device: DeviceConfig) -> np.ndarray:
    """Reference twin of :func:`tuning_disturb`: every pulse of every cell, in tuning order."""
    k = np.asarray(pulses)
    rows, cols = k.shape
    p = device.programming
    out = np.zeros(k.shape)
    bl = float(dv_per_pulse(bl_stress_ox_v(device), device))
    for r in range(rows):
        for c in range(cols):  # cell (r, c) is pulsed; cells tuned earlier are disturbed
            for i in range(int(k[r, c])):
                vp = p.ispp_start_v + p.ispp_step_v * min(i, p.max_pulses)
                wl = float(dv_per_pulse(wl_stress_ox_v(vp, device), device))
                out[r, :c] += wl
                out[:r, c] -= bl
    return out
