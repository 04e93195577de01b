"""Disturbs of a programmed array (issue 20, point 3 and "Missing").

**Program disturb.** A program pulse on cell (r, c) stresses the other cells of word line r
(their bit lines inhibited: gate stress V_s = V_pgm - bl_inhibit_v across the oxide as
alpha_G V_s, charge gain) and of bit line c (word line off: drain stress bl_stress_v,
bl_coupling of it across the oxide, charge loss). Per pulse, Fowler-Nordheim tunnelling
(Lenzlinger & Snow 1969):

    E = V_ox / t_ox,  J = A E^2 exp(-B / E) (E > 0; 0 otherwise),
    dV_th = J x tunnel_area x stress time / C_CG,  C_CG = q / dv_per_electron

Only pulses after a cell's own final verify move it (earlier ones are verified away). Order
(``disturb.tuning_order``), row-major (row 0 first, columns left to right): 'cell_by_cell'
programs and tunes one cell completely before the next, each taking its ISPP staircase
V_pgm(i) = ispp_start_v + i ispp_step_v, i < its pulse count (fine-tuning pulses counted at
the staircase), so a cell (r, c) receives the word-line pulses of cells (r, c' > c) and the
bit-line pulses of cells (r' > r, c); 'two_pass' runs ISPP on every cell first and then the
fine tuning of every cell, so only the tuning pulses of later cells count.

**Floating-gate coupling** (Lee et al., IEEE EDL 23(5) 2002, abstract: a cell's V_th moves in
proportion to the V_th change of its neighbours through the parasitic floating-gate
capacitances): dV_th(r, c) = gamma_wl dV(r, c+1) + gamma_bl dV(r+1, c), the neighbours'
V_th changes after the cell's final verify (row-major: the right and lower neighbours are
programmed later; the left and upper ones were verified before it). dV is the whole change
from the erased state ('cell_by_cell') or the tuning pass only ('two_pass').

**Read disturb.** Each read biases the control gate at v_cg_read_v for t_read_s; the
floating gate sits at V_FG = alpha_G (V_cg - (V_th - V_th,neutral)) over the grounded channel,
so the oxide sees V_FG and electrons tunnel in (V_FG > 0, V_th rises) or out (V_FG < 0)
with the Fowler-Nordheim current above: the shift per read is zero at zero stress and
drives the cell towards V_th* = V_cg + V_th,neutral, where the field vanishes. Hot-carrier
injection needs electrons above the 3.1 eV Si/SiO2 barrier, beyond what the read's
V_DS (0.3 V) gives; not modelled. Defect-assisted (SILC) read disturb of cycled or weak
oxides (the mechanism seen in products: "Read disturb in flash memories: reliability case",
abstract) is not modelled either.
"""

from __future__ import annotations

import numpy as np

from norsim.device.config import DeviceConfig
from norsim.device.iv import ELEMENTARY_CHARGE_C
from norsim.errors import InputError


def fn_shift(v_ox, duration_s: float, device: DeviceConfig) -> np.ndarray:
    """|V_th| shift of ``duration_s`` with ``v_ox`` across the tunnel oxide (0 at v_ox <= 0)."""
    d, p = device.disturb, device.programming
    v = np.asarray(v_ox, dtype=np.float64)
    e = np.maximum(v, 0.0) / (d.tunnel_oxide_nm * 1e-9)  # V/m
    b = d.fn_b_v_per_cm * 100.0
    pos = e > 0
    j = np.where(pos, d.fn_a_a_per_v2 * e**2 * np.exp(-b / np.where(pos, e, 1.0)), 0.0)
    c_cg = ELEMENTARY_CHARGE_C / p.dv_per_electron_v
    return j * d.tunnel_area_um2 * 1e-12 * duration_s / c_cg


def dv_per_pulse(v_ox, device: DeviceConfig) -> np.ndarray:
    """|V_th| shift of one program pulse with ``v_ox`` across the tunnel oxide."""
    return fn_shift(v_ox, device.programming.pulse_width_s, device)


def wl_stress_ox_v(v_pgm, device: DeviceConfig):
    """Oxide voltage of a word-line half-selected cell under a pulse at ``v_pgm``."""
    return device.cell.alpha_g * (np.asarray(v_pgm, dtype=np.float64) - device.disturb.bl_inhibit_v)


def bl_stress_ox_v(device: DeviceConfig) -> float:
    """Oxide voltage of a bit-line half-selected cell under a pulse on its column."""
    return device.disturb.bl_coupling * device.disturb.bl_stress_v


def _staircase_cum(kmax: int, device: DeviceConfig) -> np.ndarray:
    p = device.programming
    v = p.ispp_start_v + p.ispp_step_v * np.minimum(np.arange(kmax), p.max_pulses)
    return np.concatenate([[0.0], np.cumsum(dv_per_pulse(wl_stress_ox_v(v, device), device))])


def staircase_dose(pulses, device: DeviceConfig, first=None) -> np.ndarray:
    """Word-line disturb one neighbour's ISPP pulses cause: the sum over its staircase of
    pulses ``first`` (default 0) to ``pulses`` - 1."""
    k = np.asarray(pulses, dtype=np.int64)
    if k.size and k.min() < 0:
        raise InputError("pulses", int(k.min()), "pulse counts >= 0")
    f = np.zeros_like(k) if first is None else np.asarray(first, dtype=np.int64)
    if f.shape != k.shape or (f.size and (f.min() < 0 or np.any(f > k))):
        raise InputError("first", f.shape, f"counts in [0, pulses] of shape {k.shape}")
    cum = _staircase_cum(int(k.max()) if k.size else 0, device)
    return cum[k] - cum[f]


def _later_sums(dose, count):
    """Per cell: the word-line dose of later cells of its row and the count of later cells'
    pulses of its column (row-major order), each excluding the cell itself."""
    wl_after = np.cumsum(dose[:, ::-1], axis=1)[:, ::-1] - dose
    bl_after = np.cumsum(count[::-1, :], axis=0)[::-1, :] - count
    return wl_after, bl_after


def _check_map(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise InputError(name, a.shape, "a (rows, cols) array")
    return a


def _two_pass(device: DeviceConfig) -> bool:
    """Two passes need a tuning pass: without two-way tuning every cell's final verify is
    its ISPP one, in cell-by-cell order."""
    return device.disturb.tuning_order == "two_pass" and device.programming.two_way_tuning


def tuning_disturb(pulses, device: DeviceConfig, tune_pulses=None) -> np.ndarray:
    """V_th shift of every cell of a (rows, cols) array from the pulses its row and column
    neighbours receive after its own final verify (row-major; with ``tune_pulses`` and the
    'two_pass' order only the tuning pulses count)."""
    k = _check_map("pulses", pulses).astype(np.int64)
    first = None
    if tune_pulses is not None and _two_pass(device):
        first = k - _check_map("tune_pulses", tune_pulses).astype(np.int64)
    wl = staircase_dose(k, device, first)
    count = k if first is None else k - first
    wl_after, bl_after = _later_sums(wl, count)
    return wl_after - float(dv_per_pulse(bl_stress_ox_v(device), device)) * bl_after


def tuning_disturb_loops(pulses, device: DeviceConfig, first=None) -> np.ndarray:
    """Reference twin of :func:`tuning_disturb`: every pulse of every cell, in tuning order
    (pulses ``first`` of each cell were verified away before the final pass)."""
    k = np.asarray(pulses)
    f = np.zeros_like(k) if first is None else np.asarray(first)
    rows, cols = k.shape
    p = device.programming
    out = np.zeros(k.shape)
    bl = float(dv_per_pulse(bl_stress_ox_v(device), device))
    for r in range(rows):
        for c in range(cols):  # cell (r, c) is pulsed; cells tuned earlier are disturbed
            for i in range(int(f[r, c]), int(k[r, c])):
                vp = p.ispp_start_v + p.ispp_step_v * min(i, p.max_pulses)
                wl = float(dv_per_pulse(wl_stress_ox_v(vp, device), device))
                out[r, :c] += wl
                out[:r, c] -= bl
    return out


def coupling_shift(dvth, device: DeviceConfig) -> np.ndarray:
    """Apparent V_th shift of every cell of a (rows, cols) map from its neighbours' V_th
    changes ``dvth`` after its final verify: gamma_wl dV(r, c+1) + gamma_bl dV(r+1, c)."""
    dv = _check_map("dvth", dvth).astype(np.float64)
    d = device.disturb
    out = np.zeros_like(dv)
    out[:, :-1] += d.fg_coupling_wl * dv[:, 1:]
    out[:-1, :] += d.fg_coupling_bl * dv[1:, :]
    return out


def coupling_shift_loops(dvth, device: DeviceConfig) -> np.ndarray:
    """Reference twin of :func:`coupling_shift`: each cell in row-major order moves the
    neighbours verified before it (left: word line, above: bit line)."""
    dv = np.asarray(dvth, dtype=np.float64)
    rows, cols = dv.shape
    d = device.disturb
    out = np.zeros(dv.shape)
    for r in range(rows):
        for c in range(cols):
            if c > 0:
                out[r, c - 1] += d.fg_coupling_wl * dv[r, c]
            if r > 0:
                out[r - 1, c] += d.fg_coupling_bl * dv[r, c]
    return out


def tuning_shift(result, device: DeviceConfig, vth=None, pulses=None, tune_pulses=None,
                 vth_erased=None, vth_ispp=None) -> np.ndarray:
    """V_th shift of a programmed (rows, cols) tile from program disturb (when
    ``disturb.program_disturb``) and floating-gate coupling of later neighbours, in
    ``disturb.tuning_order``. The arrays default to those of ``result`` (a ProgramResult);
    pass them to override (e.g. after column repair)."""
    get = lambda a, name: np.asarray(getattr(result, name) if a is None else a)  # noqa: E731
    vth, k, kt = get(vth, "vth"), get(pulses, "pulses"), get(tune_pulses, "tune_pulses")
    d = device.disturb
    out = np.zeros(np.shape(vth))
    if d.program_disturb:
        out += tuning_disturb(k, device, kt)
    if d.fg_coupling_wl or d.fg_coupling_bl:
        start = get(vth_ispp, "vth_ispp") if _two_pass(device) else get(
            vth_erased, "vth_erased")
        out += coupling_shift(vth - start, device)
    return out


def read_ox_v(vth, device: DeviceConfig) -> np.ndarray:
    """Signed oxide voltage of a cell during a read: its floating-gate potential
    alpha_G (V_cg - (V_th - V_th,neutral)) over the grounded channel."""
    c = device.cell
    return c.alpha_g * (device.read.v_cg_read_v
                        - (np.asarray(vth, dtype=np.float64) - device.retention.vth_neutral_v))


def read_dv_per_read(vth, device: DeviceConfig) -> np.ndarray:
    """Signed V_th shift of one read (electrons in: +, out: -); 0 at zero oxide field."""
    v = read_ox_v(vth, device)
    return np.sign(v) * fn_shift(np.abs(v), device.read.t_read_s, device)


def read_disturb(vth, reads: float, device: DeviceConfig, steps: int = 64) -> np.ndarray:
    """V_th after ``reads`` reads: dV/dN = read_dv_per_read(V), integrated over geometric
    chunks of reads (the first reads one by one), never crossing the fixed point
    V_cg + V_th,neutral where the field vanishes. Linear, N x the shift of one read, while
    the shift is small against the oxide voltage."""
    if not np.isfinite(reads) or reads < 0:
        raise InputError("reads", reads, "a finite read count >= 0")
    v = np.array(vth, dtype=np.float64, copy=True)
    if reads == 0:
        return v
    fixed = device.read.v_cg_read_v + device.retention.vth_neutral_v
    marks = np.unique(np.concatenate([[0.0], np.floor(np.geomspace(1.0, reads, steps)),
                                      [float(reads)]]))
    for dn in np.diff(marks):
        g = read_dv_per_read(v, device)
        if not np.any(g):
            break
        room = fixed - v
        v = v + np.sign(room) * np.minimum(np.abs(dn * g), np.abs(room))
    return v
