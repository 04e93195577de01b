"""Device validation rows of the disturbs (issue 20): program disturb, floating-gate coupling
and read disturb. Part of ``norsim validate-device`` (:mod:`norsim.device.validation`);
no disturb magnitude of a NOR cell was found in the stored sources, so the rows check the
models against their closed forms (CLOSED) and report array-tuning studies on the preset's
cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from norsim.config.sim import SimConfig
from norsim.device import disturb as dst
from norsim.device.iv import cell_model
from norsim.device.levels import read_current, target_current
from norsim.device.programming import program
from norsim.device.validation import TOLERANCES, Row, _fig

_STRESS_V_CG = 10.0  # accelerated read-disturb test: the highest control-gate read bias allowed


def _tuned_array(cfg: SimConfig, quick: bool, seed: int):
    """A square array of random levels 0-7 programmed by ISPP + tuning (nominal cells)."""
    dev = cfg.device
    side = 32 if quick else 64
    m = cell_model(dev.cell, dev.read.temperature_k)
    lv = np.random.default_rng(seed).integers(0, dev.levels.levels_per_cell, (side, side))
    i_t = target_current(dev.levels, lv)
    r = program(np.random.default_rng(seed + 1), m, dev, i_t)
    on = lv > 0

    def err(d, vth):  # mean |I / I_target - 1| of levels 1-7
        return float(np.mean(np.abs(read_current(m, d, vth) / i_t - 1.0)[on]))
    return side, r, err


def row_disturb(cfg: SimConfig, out: Path | None, quick: bool, seed: int) -> list[Row]:
    """Program disturb vs pulse count (closed form) and an array-tuning study: the final map
    of a row-major tuned array with and without the disturb of later neighbours."""
    dev = cfg.device
    p = dev.programming
    # a word-line half-selected cell under repeated pulses at the top of the staircase
    v_top = p.ispp_start_v + p.ispp_step_v * p.max_pulses
    per = float(dst.dv_per_pulse(dst.wl_stress_ox_v(v_top, dev), dev))
    n_pulses = np.array([0, 10, 100, 1000, 10000])
    sim = np.cumsum(np.concatenate([[0.0], np.full(int(n_pulses[-1]), per)]))[n_pulses]
    ok = bool(np.allclose(sim, n_pulses * per, rtol=TOLERANCES["closed_form_rel"], atol=0.0))
    zero = float(dst.dv_per_pulse(dst.wl_stress_ox_v(dev.disturb.bl_inhibit_v, dev), dev))
    side, r, err = _tuned_array(cfg, quick, seed)
    only = dev.with_overrides(["disturb.fg_coupling_wl=0.0", "disturb.fg_coupling_bl=0.0",
                               "disturb.tuning_order=cell_by_cell"])
    shift = dst.tuning_shift(r, only)
    err0, err1 = err(dev, r.vth), err(dev, r.vth + shift)
    # 256 x 256: the first cell receives 255 row and 255 column neighbours (mean pulses)
    k_mean = int(round(float(np.mean(r.pulses))))
    worst256 = 255 * (float(dst.staircase_dose(np.array([k_mean]), dev)[0])
                      - k_mean * float(dst.dv_per_pulse(dst.bl_stress_ox_v(dev), dev)))

    def draw(ax):
        big = np.max(np.abs(shift)) >= 1e-6  # mV scale, else fV (nor40: ~1e-14 V)
        im = ax.imshow(shift * (1e3 if big else 1e15), cmap="viridis", origin="upper")
        cb = ax.figure.colorbar(im, ax=ax)
        cb.set_label(f"V_th shift from later neighbours ({'mV' if big else 'fV'})")
        ax.set_xlabel("column (cell index)")
        ax.set_ylabel("row (cell index)")
    fig = _fig(out, "row10_program_disturb", draw)
    return [Row("program disturb vs pulse count", "no disturb magnitude in the stored sources "
                "(WTM2101 'anti-program-disturb array', research notes 3.4); Fowler-Nordheim "
                "(Lenzlinger & Snow 1969, recalled); closed form",
                f"word-line half-selected cell, V_pgm {v_top:.1f} V (top of the staircase), "
                f"inhibit {dev.disturb.bl_inhibit_v:g} V, 0-1e4 pulses",
                f"N x {per * 1e6:.3g} uV; 0 at zero stress",
                " / ".join(f"{x * 1e3:.3g}" for x in sim) + " mV",
                f"+-{TOLERANCES['closed_form_rel']:.0%}", "CLOSED" if ok and zero == 0.0 else "FAIL",
                f"array-tuning study {side} x {side}, cell-by-cell row-major ISPP + tuning (the "
                f"worst order): level 1-7 map error {err0:.2%} -> {err1:.2%} with disturb (max "
                f"|shift| {np.max(np.abs(shift)) * 1e3:.3g} mV); 256 x 256 first cell "
                f"~{worst256 * 1e3:.2g} mV (mean pulse count); every magnitude an estimate", fig,
                {"pulses": n_pulses.tolist(), "shift_v": sim.tolist(), "map_error": [err0, err1],
                 "max_shift_v": float(np.max(np.abs(shift)))})]


def row_coupling(cfg: SimConfig, out: Path | None, quick: bool, seed: int) -> list[Row]:
    """Floating-gate coupling: one programmed neighbour moves a cell by gamma x its change
    (closed form), and the array-tuning study in both tuning orders."""
    dev = cfg.device
    d = dev.disturb
    tol = TOLERANCES["closed_form_rel"]
    # closed form: a 3 x 3 block, the centre cell verified, its right and lower neighbours
    # programmed afterwards by 1.0 V and 2.0 V
    dv = np.zeros((3, 3))
    dv[1, 2], dv[2, 1] = 1.0, 2.0
    sim = float(dst.coupling_shift(dv, dev)[1, 1])
    closed = d.fg_coupling_wl * 1.0 + d.fg_coupling_bl * 2.0
    ok = closed == 0.0 and sim == 0.0 or abs(sim / closed - 1.0) <= tol
    side, r, err = _tuned_array(cfg, quick, seed)
    no_pd = ["disturb.program_disturb=false"]
    errs = {"none": err(dev, r.vth)}
    shifts = {}
    for order in ("two_pass", "cell_by_cell"):
        dd = dev.with_overrides(no_pd + [f"disturb.tuning_order={order}"])
        shifts[order] = dst.tuning_shift(r, dd)
        errs[order] = err(dd, r.vth + shifts[order])
    labels = ["no coupling", "two-pass tuning", "cell-by-cell tuning"]

    def draw(ax):
        vals = [errs["none"], errs["two_pass"], errs["cell_by_cell"]]
        ax.bar(labels, np.array(vals) * 100.0, color=["C0", "C1", "C3"])
        ax.set_ylabel("mean |I / I_target - 1|, levels 1-7 (%)")
        ax.set_xlabel("tuning order of the array")
    fig = _fig(out, "row11_fg_coupling", draw)
    mx = {k: float(np.max(np.abs(v))) for k, v in shifts.items()}
    return [Row("floating-gate coupling of neighbours",
                "Lee et al., IEEE EDL 23(5) 2002 (abstract: V_th shift proportional to the "
                "neighbours' V_th change; ~0.2 V in 0.12 um NAND MLC); nor40 ratios estimated "
                "from the cell geometry; closed form",
                f"gamma_wl {d.fg_coupling_wl:g}, gamma_bl {d.fg_coupling_bl:g}; right and lower "
                "neighbours programmed by 1 V and 2 V after the cell's verify",
                f"{closed * 1e3:.3g} mV (gamma_wl x 1 V + gamma_bl x 2 V)", f"{sim * 1e3:.3g} mV",
                f"+-{tol:.0%}", "CLOSED" if ok else "FAIL",
                f"array-tuning study {side} x {side}: level 1-7 map error {errs['none']:.2%} -> "
                f"{errs['two_pass']:.2%} two-pass (max shift {mx['two_pass'] * 1e3:.2g} mV; the "
                f"preset's order) and {errs['cell_by_cell']:.2%} cell-by-cell (max "
                f"{mx['cell_by_cell'] * 1e3:.2g} mV: neighbours move ~1.7 V from erase after a "
                "cell's verify)", fig,
                {"closed_v": closed, "sim_v": sim, "map_error": errs, "max_shift_v": mx})]


def row_read_disturb(cfg: SimConfig, out: Path | None, quick: bool, seed: int) -> list[Row]:
    """Read disturb vs read count: linear in N (N x the shift of one read) at an accelerated
    read bias, zero at zero stress, and the preset's read bias over a chip's life."""
    dev = cfg.device
    tol = TOLERANCES["closed_form_rel"]
    stress = dev.with_overrides([f"read.v_cg_read_v={_STRESS_V_CG}"])
    v0 = np.array([dev.cell.vth_erased_v])
    per = float(dst.read_dv_per_read(v0, stress)[0])
    n_reads = np.array([0.0, 1e1, 1e2, 1e3])
    sim = np.array([float(dst.read_disturb(v0, n, stress)[0] - v0[0]) for n in n_reads])
    ok_lin = bool(np.allclose(sim, n_reads * per, rtol=tol, atol=0.0))
    # zero stress: a cell at the fixed point V_cg + V_th,neutral sees no field
    fixed = np.array([stress.read.v_cg_read_v + dev.retention.vth_neutral_v])
    ok_zero = float(dst.read_disturb(fixed, 1e12, stress)[0] - fixed[0]) == 0.0
    long_n = np.geomspace(1.0, 1e12, 25)
    long_v = np.array([float(dst.read_disturb(v0, n, stress)[0]) for n in long_n])
    # the preset's read bias at its weight levels after 1e15 reads (~10 years of inference)
    m = cell_model(dev.cell, dev.read.temperature_k)
    from norsim.device.levels import target_vth

    lv_vth = target_vth(m, dev, target_current(dev.levels, np.arange(dev.levels.levels_per_cell)))
    life = float(np.max(np.abs(dst.read_disturb(lv_vth, 1e15, dev) - lv_vth)))

    def draw(ax):
        ax.loglog(long_n, np.maximum(long_v - v0[0], 1e-12) * 1e3, "o-",
                  label=f"simulated, erased cell, V_cg {_STRESS_V_CG:g} V")
        ax.loglog(long_n, long_n * per * 1e3, "k--", label="N x shift of one read")
        ax.axhline((fixed[0] - v0[0]) * 1e3, color="C2", ls=":",
                   label="shift that reaches V_cg + V_th,neutral (field zero)")
        ax.set_ylim(1e-4, 1e5)
        ax.set_xlabel("reads (count)")
        ax.set_ylabel("V_th shift (mV)")
        ax.legend(fontsize=8)
    fig = _fig(out, "row12_read_disturb", draw)
    return [Row("read disturb vs read count",
                "no NOR read-disturb magnitude in the stored sources (the product mechanism is "
                "SILC-assisted: 'Read disturb in flash memories: reliability case', abstract); "
                "Fowler-Nordheim at the read's floating-gate potential; closed form",
                f"erased cell (V_th {v0[0]:g} V), accelerated read at V_cg {_STRESS_V_CG:g} V, "
                f"{dev.read.t_read_s * 1e9:.0f} ns per read, 0-1e3 reads",
                f"N x {per * 1e6:.3g} uV; 0 at zero field",
                " / ".join(f"{x * 1e3:.3g}" for x in sim) + " mV", f"+-{tol:.0%}",
                "CLOSED" if ok_lin and ok_zero else "FAIL",
                f"self-limiting towards V_cg + V_th,neutral ({fixed[0]:g} V at this bias); the "
                f"preset's read (V_cg {dev.read.v_cg_read_v:g} V): largest shift of a weight "
                f"level after 1e15 reads {life:.3g} V (oxide field <= "
                f"{dev.cell.alpha_g * (dev.read.v_cg_read_v - (float(np.min(lv_vth)) - dev.retention.vth_neutral_v)) / (dev.disturb.tunnel_oxide_nm * 1e-7) / 1e6:.2g} MV/cm)",
                fig, {"reads": n_reads.tolist(), "shift_v": sim.tolist(), "per_read_v": per,
                      "life_shift_v": life})]
