"""ngspice cross-check of circuit mode: export the same array as a netlist, run, compare.

The netlist is written from the same configuration the circuit solver uses: wire segments,
straps (taps, the shared vertical strap lines and their pads), drivers and column-select switches as resistors; the finite-gain clamp as a voltage-
controlled voltage source (the amplifier, gain A) driving a voltage-controlled current source
(the clamp transistor, gm), so the clamped node follows V_ref A/(1+A) - I/(gm(1+A)) by the
circuit's own equations; a 0 V source per column measures the column current. Each cell is a
behavioural current source implementing the EKV equations of ``norsim.device.iv``:

    V_P = [alpha_G (V_G - V_th) + eta (V_D - V_S)] / n
    I   = I_S [F((V_P - V_S)/U_T) - F((V_P - V_D)/U_T)],  F(x) = ln^2(1 + e^(x/2))

a split-gate cell as two such sources in series (select transistor: alpha_G = 1, eta = 0)
with an internal node. ngspice runs in batch mode (``-b``) with reltol 1e-7, abstol 1e-18,
vntol 1e-10; its binary raw file gives every node voltage and column current.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from norsim.array.circuit import CircuitSolver, clamp_gain_of, clamp_voltage
from norsim.array.circuit_config import WireConfig
from norsim.errors import ExternalToolError, FileFormatError, InputError

SPICE_OPTIONS = {"reltol": 1e-7, "abstol": 1e-18, "vntol": 1e-10}


def _f(x: float) -> str:
    return f"{float(x):.17g}"


def _ekv_expr(model_params, v_g: float, v_th: float, alpha_g: float, d: str, s: str) -> str:
    """Behavioural-source expression of the EKV drain current from node d to node s."""
    p = model_params
    k1 = alpha_g * (v_g - v_th) / p.n
    k2 = p.dibl_eta / p.n
    i_s = 2.0 * p.n * p.beta * p.u_t ** 2
    h = 1.0 / (2.0 * p.u_t)
    vp = f"({_f(k1)}+{_f(k2)}*(v({d})-v({s})))" if k2 != 0.0 else _f(k1)
    return (f"{_f(i_s)}*(spf(({vp}-v({s}))*{_f(h)})**2"
            f"-spf(({vp}-v({d}))*{_f(h)})**2)")


@dataclass
class SpiceArray:
    """What a netlist needs: the tile, its bias and the node names of its cells."""

    vth_map: np.ndarray
    wl: np.ndarray  # (R,) word-line voltages of the one input vector
    netlist: str
    bl_nodes: list
    sl_nodes: list  # per cell (R x C), names after pair sharing
    column_sources: list


def write_netlist(solver: CircuitSolver, wl_vector) -> SpiceArray:
    """Netlist of ``solver``'s tile for one word-line voltage vector (R,)."""
    wl = solver._check_wl(wl_vector)
    if wl.shape[0] != 1:
        raise InputError("wl_vector", f"shape {np.shape(wl_vector)}",
                         "one vector of word-line voltages")
    wl = wl[0]
    cfg = solver.cfg
    w: WireConfig = solver.wires
    model = solver.model
    if solver.extra:
        raise InputError("per-cell parameters", sorted(solver.extra),
                         "none (the netlist uses the population's n, beta, eta)")
    r_, c_ = solver.rows, solver.cols
    gain = clamp_gain_of(cfg)
    v_ref = float(cfg.device.read.v_bl_read_v)
    lines = [f"* norsim circuit-mode cross-check: {r_} x {c_} {model.cell_type}, "
             f"source lines along {w.sl_layout}",
             ".options " + " ".join(f"{k}={_f(v)}" for k, v in SPICE_OPTIONS.items()) + " acct",
             ".func spf(x) {max(x,0)+ln(1+exp(-abs(x)))}",
             f"Vref vref 0 DC {_f(v_ref)}",
             f"Vsl vsl 0 DC {_f(solver.v_sl)}"]
    cols = []
    for c in range(c_):
        if np.isinf(gain):
            lines.append(f"Vcl{c} a{c} 0 DC {_f(v_ref)}")
        else:
            lines.append(f"Eamp{c} g{c} 0 vref a{c} {_f(gain)}")
            lines.append(f"Gclp{c} 0 a{c} g{c} a{c} {_f(w.clamp_gm_s)}")
        lines.append(f"Vam{c} a{c} t{c} DC 0")
        cols.append(f"vam{c}")
        lines.append(f"Rt{c} t{c} b0_{c} {_f(w.r_bl_segment_ohm + w.r_bl_terminal_ohm)}")
        for r in range(1, r_):
            lines.append(f"Rb{r}_{c} b{r - 1}_{c} b{r}_{c} {_f(w.r_bl_segment_ohm)}")
    bl_nodes = [[f"b{r}_{c}" for c in range(c_)] for r in range(r_)]
    if w.sl_layout == "cols":
        for c in range(c_):
            lines.append(f"Rd{c} vsl s0_{c} {_f(w.r_sl_segment_ohm + w.r_sl_driver_ohm)}")
            for r in range(1, r_):
                lines.append(f"Rs{r}_{c} s{r - 1}_{c} s{r}_{c} {_f(w.r_sl_segment_ohm)}")
        sl_nodes = [[f"s{r}_{c}" for c in range(c_)] for r in range(r_)]
    else:
        line_of_row = solver.network.sl_line_of_row
        n_lines = solver.network.n_sl_lines
        shared = w.strap_model == "network"  # vertical straps shared by the source lines
        for ln in range(n_lines):
            for c in range(c_):
                if c % w.strap_pitch_cols == 0 or c == c_ - 1:
                    to = f"st{ln}_{c}" if shared else "vsl"
                    lines.append(f"Rtap{ln}_{c} {to} s{ln}_{c} "
                                 f"{_f(w.r_sl_segment_ohm + w.r_strap_ohm)}")
                    if shared and ln > 0:
                        lines.append(f"Rstp{ln}_{c} st{ln - 1}_{c} st{ln}_{c} "
                                     f"{_f(w.r_strap_pitch_ohm)}")
                    if shared and ln == 0:
                        lines.append(f"Rpad0_{c} vsl st0_{c} {_f(w.r_strap_pad_ohm)}")
                    if shared and ln == n_lines - 1 and w.strap_pads == "both":
                        lines.append(f"Rpad1_{c} vsl st{ln}_{c} {_f(w.r_strap_pad_ohm)}")
                if c > 0:
                    lines.append(f"Rs{ln}_{c} s{ln}_{c - 1} s{ln}_{c} {_f(w.r_sl_segment_ohm)}")
        sl_nodes = [[f"s{line_of_row[r]}_{c}" for c in range(c_)] for r in range(r_)]
    fg = model.fg
    vth_t = solver.vth + fg.dvth
    for r in range(r_):
        for c in range(c_):
            d, s = bl_nodes[r][c], sl_nodes[r][c]
            if model.cell_type == "split_gate":
                sel = model.sel
                x = f"x{r}_{c}"
                i_sel = _ekv_expr(sel, wl[r], model.select_vth + sel.dvth, 1.0, d, x)
                i_fg = _ekv_expr(fg, solver.v_cg, vth_t[r, c], fg.alpha_g, x, s)
                lines.append(f"Bsel{r}_{c} {d} {x} I={i_sel}")
                lines.append(f"Bfg{r}_{c} {x} {s} I={i_fg}")
            else:
                i_c = _ekv_expr(fg, wl[r], vth_t[r, c], fg.alpha_g, d, s)
                lines.append(f"Bc{r}_{c} {d} {s} I={i_c}")
    lines += [".op", ".end", ""]
    return SpiceArray(solver.vth, wl, "\n".join(lines), bl_nodes, sl_nodes, cols)


def find_ngspice(ngspice: str | None = None) -> str:
    exe = ngspice or os.environ.get("NORSIM_NGSPICE", "ngspice")
    path = shutil.which(exe)
    if path is None:
        raise ExternalToolError(f"ngspice not found ({exe!r} is not on PATH): install it "
                                "(e.g. apt-get install ngspice) or set NORSIM_NGSPICE")
    return path


def read_raw(path: Path) -> dict:
    """Parse an ngspice raw file (binary or ASCII, real, one point) into {name: value}."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ExternalToolError(f"ngspice wrote no raw file {path} ({exc.strerror})") from None
    names = []
    n_vars = None
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise FileFormatError(f"{path}: raw file ends inside its header")
        line = data[pos:end].decode("latin-1")
        pos = end + 1
        if line.startswith("No. Variables:"):
            n_vars = int(line.split(":")[1])
        elif line.startswith("Variables:"):
            for _ in range(n_vars or 0):
                end = data.find(b"\n", pos)
                parts = data[pos:end].decode("latin-1").split()
                pos = end + 1
                names.append(parts[1].lower())
        elif line.startswith("Binary:"):
            vals = np.frombuffer(data[pos:pos + 8 * len(names)], dtype="<f8")
            break
        elif line.startswith("Values:"):
            toks = data[pos:].decode("latin-1").split()
            vals = np.array([float(t) for t in toks[1:1 + len(names)]])
            break
    if n_vars is None or len(vals) != len(names):
        raise FileFormatError(f"{path}: raw file holds {len(vals)} values for "
                              f"{len(names)} variables")
    return dict(zip(names, vals))


@dataclass
class SpiceRun:
    values: dict
    analysis_seconds: float
    wall_seconds: float
    log: str


def run_ngspice(netlist: str, *, ngspice: str | None = None, workdir: str | None = None,
                timeout_s: float = 3600.0) -> SpiceRun:
    exe = find_ngspice(ngspice)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="norsim_spice_") as tmp:
        cir = Path(tmp) / "array.cir"
        raw = Path(tmp) / "array.raw"
        cir.write_text(netlist)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([exe, "-b", "-n", "-r", str(raw), str(cir)], capture_output=True,
                                  text=True, timeout=timeout_s, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise ExternalToolError(f"ngspice did not finish within {timeout_s:g} s") from None
        except OSError as exc:
            raise ExternalToolError(f"ngspice could not be started ({exe}): {exc}") from None
        wall = time.perf_counter() - t0
        log = proc.stdout + proc.stderr
        if proc.returncode != 0 or not raw.exists():
            pattern = re.compile(r"error|abort|fail|singular|converge", re.I)
            errs = [ln for ln in log.splitlines() if pattern.search(ln)]
            msg = errs[-1].strip() if errs else (log.strip().splitlines() or ["no output"])[-1]
            raise ExternalToolError(f"ngspice failed (exit {proc.returncode}): {msg}")
        values = read_raw(raw)
    m = re.search(r"Total analysis time \(seconds\)\s*=\s*([0-9.eE+-]+)", log)
    analysis = float(m.group(1)) if m else float("nan")
    return SpiceRun(values, analysis, wall, log)


# ----------------------------------------------------------------------- the check ----
def check_setup(cfg, rows: int, cols: int, seed: int, *, stress: bool = False):
    """V_th map, one input vector and wires of a spice-check case (seeded).

    Realistic case: cell currents log-uniform in [10, 100] nA at the nominal bias (the
    recommended subthreshold range), the preset's wires. Stress case: currents in
    [0.3, 1] uA and every resistance x 20, so the IR drop moves column currents by > 5 %.
    """
    from norsim.device.iv import cell_model, vth_for_current

    for name, v in (("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(name, v, "a whole number >= 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", seed, "a whole number >= 0")
    read = cfg.device.read
    model = cell_model(cfg.device.cell, read.temperature_k)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(3, 7)))
    lo, hi = (0.3e-6, 1.0e-6) if stress else (10e-9, 100e-9)
    i_target = np.exp(rng.uniform(np.log(lo), np.log(hi), (rows, cols)))
    split = model.cell_type == "split_gate"
    v_on = read.v_select_on_v if split else read.v_cg_read_v
    v_off = read.v_select_off_v
    v_clamp = clamp_voltage(cfg)
    vth = vth_for_current(model, i_target, v_on, read.v_cg_read_v, v_clamp, read.v_sl_read_v)
    wl = np.where(rng.random(rows) < 0.5, v_on, v_off)
    wires = cfg.array.wires.scaled(20.0) if stress else cfg.array.wires
    return vth, wl, wires, model


def spice_check(cfg, rows: int, cols: int, seed: int, *, stress: bool = False,
                ngspice: str | None = None, workdir: str | None = None) -> dict:
    """Solve one seeded case with circuit mode and with ngspice; compare (see module doc)."""
    vth, wl, wires, model = check_setup(cfg, rows, cols, seed, stress=stress)
    find_ngspice(ngspice)
    t0 = time.perf_counter()
    solver = CircuitSolver(vth, cfg, model, wires=wires)
    res = solver.solve(wl[None, :])
    t_norsim = time.perf_counter() - t0
    spice = write_netlist(solver, wl)
    run = run_ngspice(spice.netlist, ngspice=ngspice, workdir=workdir)
    vals = run.values
    try:
        i_sp = np.array([vals[f"i({n})"] for n in spice.column_sources])
        vb_sp = np.array([[vals[f"v({n})"] for n in row] for row in spice.bl_nodes])
        vs_sp = np.array([[vals[f"v({n})"] for n in row] for row in spice.sl_nodes])
    except KeyError as exc:
        raise ExternalToolError(f"ngspice output lacks {exc.args[0]}") from None
    i_ns = res.column_currents[0]
    i_id = res.ideal_column_currents[0]
    scale = np.abs(i_sp).max()
    d_sp = i_sp - i_id
    d_ns = i_ns - i_id
    node_err = max(np.abs(res.bl_node_v[0] - vb_sp).max(), np.abs(res.sl_node_v[0] - vs_sp).max())
    return {
        "rows": int(rows), "cols": int(cols), "seed": int(seed), "stress": bool(stress),
        "cell_type": model.cell_type, "sl_layout": wires.sl_layout,
        "strap_model": wires.strap_model, "strap_pads": wires.strap_pads,
        "max_column_current_a": float(scale),
        "max_column_error_rel": float(np.abs(i_ns - i_sp).max() / scale),
        "max_node_error_v": float(node_err),
        "max_ir_drop_bl_v": float(res.bl_drop.max()),
        "max_ir_drop_sl_v": float(res.sl_drop.max()),
        "ir_drop_error_rel": float(np.abs(d_sp).max() / scale),
        "ir_delta_error_rel": float(np.abs(d_ns - d_sp).max() / max(np.abs(d_sp).max(), 1e-300)),
        "norsim_seconds": float(t_norsim),
        "ngspice_analysis_seconds": float(run.analysis_seconds),
        "ngspice_wall_seconds": float(run.wall_seconds),
        "newton_iterations": int(res.iterations[0]),
    }
