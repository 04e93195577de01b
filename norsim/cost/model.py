"""Energy, latency and area of a mapped chip from the event counts of its own run.

Two steps, so the second is cheap and repeatable:

* :func:`collect` reads a :class:`~norsim.mapping.mapper.Chip` after ``engine.run``: per
  tile its geometry and its :class:`~norsim.array.events.ArrayEvents`, per layer its shape,
  bit widths and where it ran. The result (:class:`ChipActivity`) holds plain numbers.
* :func:`estimate` turns a ``ChipActivity`` and a :class:`~norsim.cost.config.CostConfig`
  into a :class:`CostReport`: energy per image by component, latency, area, TOPS/W,
  TOPS/mm^2 (2 operations per MAC), frames per second. Every equation is in
  ``docs/cost-model.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from norsim.cost import technology as tech_mod
from norsim.cost.config import CostConfig, TechConfig
from norsim.errors import InputError

#: energy components, in the order of tables and stacked bars
COMPONENTS = ("cell_read", "bitline", "sourceline", "wordline", "wl_driver", "sense", "adc",
              "shift_add", "buffer", "movement", "digital_mac")

OPS_PER_MAC = 2  # TOPS and TOPS/W count a multiply-accumulate as two operations


@dataclass
class TileActivity:
    """One tile's geometry and its event totals over the counted images."""

    rows: int
    cols: int
    rows_used: int
    phys_cols: int
    n_out: int
    conversions_per_cycle: int
    adc_bits: int
    columns_per_adc: int
    cycles_per_multiply: int
    in_bits: int
    multiplies: int
    read_cycles: int
    wl_pulses: int
    wl_toggles: int
    bitline_charge_c: float
    adc_conversions: dict
    shift_add_ops: dict
    buffer_bits: int
    column_mux_switches: int = 0
    program_time_s: float = 0.0
    program_energy_j: float = 0.0


@dataclass
class Electrical:
    """The read-bias and wire numbers of one layer's array configuration."""

    v_bl_v: float
    v_sl_v: float
    v_wl_swing_v: float
    t_read_s: float
    r_bl_segment_ohm: float
    r_bl_source_ohm: float
    integrator_cap_f: float

    @classmethod
    def from_sim(cls, cfg) -> "Electrical":
        r, a = cfg.device.read, cfg.array
        gain = a.sense.clamp_gain
        swing = (r.v_select_on_v - r.v_select_off_v if cfg.device.cell.cell_type == "split_gate"
                 else r.v_cg_read_v)
        if a.encoding.input_scheme in ("multi_level", "current_mirror"):
            # amplitude inputs: the driven line moves within the DAC's level span
            swing = a.dac.ml_span_v
        return cls(v_bl_v=r.v_bl_read_v * gain / (1.0 + gain), v_sl_v=r.v_sl_read_v,
                   v_wl_swing_v=abs(swing), t_read_s=r.t_read_s,
                   r_bl_segment_ohm=a.wires.r_bl_segment_ohm,
                   r_bl_source_ohm=a.wires.r_bl_terminal_ohm + a.wires.r_clamp_out_ohm(gain),
                   integrator_cap_f=a.sense.integrator_cap_f)


@dataclass
class LayerActivity:
    """One conv/linear layer: shape, bit widths, where it ran and its tiles' activity."""

    name: str
    op: str
    analog: bool
    vectors: int            # matrix-vector products over the counted images
    in_features: int
    out_features: int
    in_bits: int
    weight_bits: int
    out_elements: int       # output values over the counted images
    out_bits: int
    electrical: Electrical | None = None
    row_blocks: int = 1     # tiles along the input dimension (partial sums added digitally)
    tiles: list[TileActivity] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return self.vectors * self.in_features * self.out_features


@dataclass
class ChipActivity:
    """What the cost model consumes: every layer's activity over ``images`` images."""

    model_name: str
    images: int
    source: str            # which images the events were counted on
    layers: list[LayerActivity]
    configuration: str = ""  # first/last layer analog or digital, compensation on/off


def describe_configuration(cfg, layers: list[LayerActivity] | None = None, chip=None) -> str:
    """The configuration a cost figure depends on, in words: where the first and last
    conv/linear layers ran (from ``layers`` when given, else ``cfg.mapping``) and whether
    compensation ran on the chip (``chip.compensation`` set by norsim.compensation) or is
    only enabled in ``cfg``."""
    if layers:
        first = "analog" if layers[0].analog else "digital"
        last = "analog" if layers[-1].analog else "digital"
    else:
        first, last = cfg.mapping.first_layer, cfg.mapping.last_layer
    enabled = bool(cfg.compensation.enabled)
    ran = chip is None or getattr(chip, "compensation", None) is not None
    comp = ("on" if ran else "off (enabled in the configuration, not run on this chip)") \
        if enabled else "off"
    return f"first layer {first}, last layer {last}, compensation {comp}"


def _layer_out_spec(model, node):
    return model.specs()[node.name]


def tile_activity(arr, program_time_s: float = 0.0, program_energy_j: float = 0.0) -> TileActivity:
    """Geometry and event totals of one :class:`~norsim.array.nor_array.NorArray`."""
    ev, a = arr.events, arr.cfg.array
    return TileActivity(
        rows=a.rows, cols=a.cols, rows_used=arr.rows_used, phys_cols=arr.phys_cols,
        n_out=arr.n_out, conversions_per_cycle=int(arr._channels["pos"].size),
        adc_bits=int(arr.adc.bits), columns_per_adc=a.adc.columns_per_adc,
        cycles_per_multiply=int(arr.cycles), in_bits=int(arr.nbits_in),
        multiplies=int(ev.multiplies), read_cycles=int(ev.read_cycles),
        wl_pulses=int(ev.wl_pulses), wl_toggles=int(ev.wl_toggles),
        bitline_charge_c=float(ev.bitline_charge_c.sum()),
        adc_conversions=dict(ev.adc_conversions), shift_add_ops=dict(ev.shift_add_ops),
        buffer_bits=int(ev.buffer_bits), column_mux_switches=int(ev.column_mux_switches),
        program_time_s=float(program_time_s), program_energy_j=float(program_energy_j))


def collect(chip, images: int, source: str = "evaluation images") -> ChipActivity:
    """Read a chip's tiles after ``engine.run`` over ``images`` images (the tiles' events must
    count only those images: ``engine.calibrate`` resets them after calibration)."""
    from norsim.mapping.quant_model import Conv2d

    if images < 1:
        raise InputError("images", images, "at least one image counted")
    specs = chip.model.specs()
    layers = []
    for name, ml in chip.layers.items():
        node = ml.node
        out = specs[node.name]
        per_image_vectors = int(np.prod(out.shape)) // node.out_channels
        op = "conv2d" if isinstance(node, Conv2d) else "linear"
        la = LayerActivity(name=name, op=op, analog=ml.analog,
                           vectors=per_image_vectors * images, in_features=ml.in_features,
                           out_features=ml.out_features, in_bits=ml.in_bits,
                           weight_bits=node.weight_bits,
                           out_elements=int(np.prod(out.shape)) * images, out_bits=out.bits)
        if ml.analog:
            la.electrical = Electrical.from_sim(ml.layer_cfg)
            la.row_blocks = len({t.row_start for t in ml.tiles})
            for t in ml.tiles:
                la.tiles.append(tile_activity(t.array, t.program_time_s, t.program_energy_j))
            counted = {tl.multiplies for tl in la.tiles}
            if counted != {la.vectors}:
                raise InputError("chip events", f"layer {name!r}: {sorted(counted)} multiplies per tile",
                                 f"{la.vectors} ({images} images): reset the events after "
                                 f"calibration (engine.calibrate does) and run exactly those images")
        layers.append(la)
    return ChipActivity(chip.model.name, int(images), source, layers,
                        describe_configuration(chip.cfg, layers, chip))


# ---------------------------------------------------------------------------- estimate ----
@dataclass
class LayerCost:
    name: str
    op: str
    where: str
    macs_per_image: float
    energy_j: dict            # component -> J per image
    latency_s: float          # per image
    area_mm2: float
    tiles: int
    utilisation: float
    program_time_s: float
    program_energy_j: float

    @property
    def energy_total_j(self) -> float:
        return float(sum(self.energy_j.values()))

    def as_dict(self) -> dict:
        e = self.energy_total_j
        return {"layer": self.name, "op": self.op, "where": self.where,
                "macs_per_image": self.macs_per_image, "energy_j": dict(self.energy_j),
                "energy_total_j": e, "latency_s": self.latency_s, "area_mm2": self.area_mm2,
                "tiles": self.tiles, "utilisation": self.utilisation,
                "tops_per_w": OPS_PER_MAC * self.macs_per_image / e / 1e12 if e > 0 else None,
                "program_time_s": self.program_time_s,
                "program_energy_j": self.program_energy_j}


@dataclass
class CostReport:
    model_name: str
    images: int
    source: str
    node: str
    adc_model: str
    layers: list[LayerCost]
    digital_area_mm2: float = 0.0
    configuration: str = ""
    #: (low-cost corner, high-cost corner) reports when made by :func:`estimate_range`
    bounds: tuple | None = None

    # totals (per image)
    @property
    def macs_per_image(self) -> float:
        return float(sum(lc.macs_per_image for lc in self.layers))

    @property
    def energy_by_component_j(self) -> dict:
        out = {c: 0.0 for c in COMPONENTS}
        for lc in self.layers:
            for c, v in lc.energy_j.items():
                out[c] += v
        return out

    @property
    def energy_per_image_j(self) -> float:
        return float(sum(lc.energy_total_j for lc in self.layers))

    @property
    def latency_single_s(self) -> float:
        """Single-image latency: layers one after another."""
        return float(sum(lc.latency_s for lc in self.layers))

    @property
    def fps_pipelined(self) -> float:
        """Layer-pipelined throughput: one image per slowest-layer latency."""
        slowest = max(lc.latency_s for lc in self.layers)
        return 1.0 / slowest if slowest > 0 else float("inf")

    @property
    def area_mm2(self) -> float:
        return float(sum(lc.area_mm2 for lc in self.layers)) + self.digital_area_mm2

    @property
    def power_w(self) -> float:
        return self.energy_per_image_j * self.fps_pipelined

    @property
    def tops(self) -> float:
        return OPS_PER_MAC * self.macs_per_image * self.fps_pipelined / 1e12

    @property
    def tops_per_w(self) -> float:
        e = self.energy_per_image_j
        return OPS_PER_MAC * self.macs_per_image / e / 1e12 if e > 0 else float("inf")

    @property
    def tops_per_mm2(self) -> float:
        return self.tops / self.area_mm2 if self.area_mm2 > 0 else float("inf")

    @property
    def utilisation(self) -> float:
        used = tot = 0.0
        for lc in self.layers:
            used += lc.utilisation * lc.tiles
            tot += lc.tiles
        return used / tot if tot else 0.0

    def totals(self) -> dict:
        """The headline figures (per image) by name."""
        return {"energy_per_image_j": self.energy_per_image_j,
                "latency_single_image_s": self.latency_single_s,
                "fps_pipelined": self.fps_pipelined, "area_mm2": self.area_mm2,
                "power_w": self.power_w, "tops": self.tops, "tops_per_w": self.tops_per_w,
                "tops_per_mm2": self.tops_per_mm2}

    def ranges(self) -> dict | None:
        """figure -> (lowest, highest) over the two source corners and the nominal value."""
        if self.bounds is None:
            return None
        vals = [self.totals()] + [b.totals() for b in self.bounds]
        return {k: (min(v[k] for v in vals), max(v[k] for v in vals)) for k in vals[0]}

    def as_dict(self) -> dict:
        rng = self.ranges()
        return {
            "model": self.model_name, "images": self.images, "events_from": self.source,
            "node": self.node, "adc_model": self.adc_model,
            "configuration": self.configuration,
            "range": None if rng is None else {k: list(v) for k, v in rng.items()},
            "ops_per_mac": OPS_PER_MAC,
            "layers": [lc.as_dict() for lc in self.layers],
            "total": {
                "macs_per_image": self.macs_per_image,
                "energy_per_image_j": self.energy_per_image_j,
                "energy_by_component_j": self.energy_by_component_j,
                "latency_single_image_s": self.latency_single_s,
                "fps_pipelined": self.fps_pipelined,
                "area_mm2": self.area_mm2, "digital_area_mm2": self.digital_area_mm2,
                "power_w": self.power_w, "tops": self.tops, "tops_per_w": self.tops_per_w,
                "tops_per_mm2": self.tops_per_mm2, "utilisation": self.utilisation,
            },
            "programming": {
                "time_s": float(sum(lc.program_time_s for lc in self.layers)),
                "energy_j": float(sum(lc.program_energy_j for lc in self.layers)),
            },
        }


def _acc_width(in_bits: int, weight_bits: int, in_features: int) -> int:
    """Width of an exact accumulator of ``in_features`` products."""
    return int(in_bits + weight_bits + math.ceil(math.log2(max(2, in_features))))


def tile_timing(t: TileActivity, el: Electrical, tech: TechConfig) -> tuple[float, float]:
    """(initiation interval, latency) of one matrix-vector product on a tile.

    A read cycle is word-line and bit-line RC settling (to half an LSB of the ADC) plus the
    integration time; the conversions of the column-shared ADCs take
    ceil(h / n_adcs) (bits + 1) t_bit. With ``tech.adc_overlap`` a cycle's conversions overlap
    the next cycle's integration: interval = k max(t_phase, t_conv); without, k (t_phase +
    t_conv). Latency adds the last non-overlapped phase and one digital clock (shift-add)."""
    c_wl_seg = tech.c_wire_f_per_m * tech.cell_pitch_m + tech.c_gate_f
    c_bl_seg = tech.c_wire_f_per_m * tech.cell_pitch_m + tech.c_drain_f
    tau_wl = tech_mod.elmore_tau_s(tech.r_wl_driver_ohm, tech.r_wl_segment_ohm, c_wl_seg, t.cols)
    tau_bl = tech_mod.elmore_tau_s(el.r_bl_source_ohm, el.r_bl_segment_ohm, c_bl_seg, t.rows)
    t_phase = tech_mod.settle_taus(t.adc_bits) * (tau_wl + tau_bl) + el.t_read_s
    h = t.conversions_per_cycle
    n_adcs = max(1, math.ceil(h / t.columns_per_adc))
    t_conv = math.ceil(h / n_adcs) * tech_mod.adc_time_s(t.adc_bits, tech)
    k = t.cycles_per_multiply
    if tech.adc_overlap:
        interval = k * max(t_phase, t_conv)
        latency = interval + min(t_phase, t_conv)
    else:
        interval = latency = k * (t_phase + t_conv)
    return interval, latency + 1.0 / tech.f_clk_hz


def _adc_e(bits: int, tech: TechConfig, adc_model: str) -> float:
    """One conversion; ``adc_model`` 'low' / 'high': the lowest / highest ADC source."""
    if adc_model in tech_mod.CORNERS:
        return tech_mod.adc_energy_bounds_j(bits, tech)[0 if adc_model == "low" else 1]
    return tech_mod.adc_energy_j(bits, tech, adc_model)


def _tile_energy(t: TileActivity, el: Electrical, tech: TechConfig, adc_model: str) -> dict:
    """Energy (J, over all counted multiplies) of one tile by component."""
    seg_wire = tech.c_wire_f_per_m * tech.cell_pitch_m
    c_bl = t.rows * (seg_wire + tech.c_drain_f)
    c_wl = t.cols * (seg_wire + tech.c_gate_f)
    c_sl = t.cols * (seg_wire + 2 * tech.c_source_f)  # one source line per row pair
    n_sl = math.ceil(t.rows_used / 2)
    conversions = sum(t.adc_conversions.values())
    return {
        # current drawn from V_dd through the clamp: V_bl across the cells, V_dd - V_bl in
        # the clamp; the charge already includes the leakage of unselected rows
        "cell_read": tech.v_dd_v * t.bitline_charge_c,
        # each used bit line charged from V_dd to V_bl once per read cycle
        "bitline": t.read_cycles * t.phys_cols * c_bl * el.v_bl_v * tech.v_dd_v,
        # source lines (re)charged to V_sl once per multiply
        "sourceline": t.multiplies * n_sl * c_sl * el.v_sl_v ** 2,
        # a word-line pulse charges and discharges the line: C V^2 per pulse (2 toggles)
        "wordline": 0.5 * t.wl_toggles * c_wl * el.v_wl_swing_v ** 2,
        "wl_driver": t.wl_pulses * tech.e_wl_driver_j,
        "sense": conversions * tech.e_sense_j,
        "adc": float(sum(n * _adc_e(b, tech, adc_model) for b, n in t.adc_conversions.items())),
        "shift_add": float(sum(n * w * tech.e_add_per_bit_j for w, n in t.shift_add_ops.items())),
        "buffer": t.buffer_bits * tech.e_buffer_per_bit_j,
    }


def tile_area_um2(t: TileActivity, el: Electrical, tech: TechConfig) -> float:
    """Cells, one ADC per ``columns_per_adc`` conversions per cycle of the full array, a sense circuit and
    integration capacitor per column, word-line drivers, shift-add accumulators per ADC and
    the tile's input/output buffers."""
    # conversions per cycle of the full array (the used columns' count scaled to all columns:
    # analog subtraction or a reference column change it), shared columns_per_adc to an ADC
    h_full = t.conversions_per_cycle * t.cols / max(1, t.phys_cols)
    n_adcs = math.ceil(h_full / t.columns_per_adc)
    acc_w = t.adc_bits + t.in_bits + 4
    return (t.rows * t.cols * tech.cell_area_um2
            + n_adcs * tech_mod.adc_area_um2(t.adc_bits, tech)
            + t.cols * (tech.sense_area_um2 + el.integrator_cap_f / tech.cap_density_f_per_um2)
            + t.rows * tech.wl_driver_area_um2
            + n_adcs * acc_w * tech.adder_area_per_bit_um2
            + (t.rows * t.in_bits + t.cols * acc_w) * tech.sram_area_per_bit_um2)


def estimate_range(activity: ChipActivity, cost: CostConfig) -> CostReport:
    """:func:`estimate` with ``bounds``: the same events priced with every component at its
    lowest- and highest-cost source (``technology.SPREAD``, ADC: survey envelope, survey
    median, NeuroSim SAR)."""
    rep = estimate(activity, cost)
    rep.bounds = (estimate(activity, cost, corner="low"), estimate(activity, cost, corner="high"))
    return rep


def estimate(activity: ChipActivity, cost: CostConfig, corner: str | None = None) -> CostReport:
    """Energy, latency and area per image of every layer and the chip; ``corner`` 'low' /
    'high' prices every component at its lowest / highest source instead."""
    tech = tech_mod.effective_tech(cost)
    adc_model = cost.adc_model
    if corner is not None:
        tech, adc_model = tech_mod.corner_tech(tech, corner), corner
    n = activity.images
    layers = []
    any_digital = False
    for la in activity.layers:
        e = {c: 0.0 for c in COMPONENTS}
        acc_w = _acc_width(la.in_bits, la.weight_bits, la.in_features)
        if la.analog:
            el = la.electrical
            interval = latency = 0.0
            area = 0.0
            for t in la.tiles:  # a layer's tiles work in parallel on the same vectors
                for c, v in _tile_energy(t, el, tech, adc_model).items():
                    e[c] += v / n
                ii, lat = tile_timing(t, el, tech)
                interval, latency = max(interval, ii), max(latency, lat)
                area += tile_area_um2(t, el, tech)
            # the vectors of one image follow each other through the tiles' pipeline
            latency += (la.vectors / n - 1) * interval
            # row-block partial sums added digitally
            e["shift_add"] += (la.vectors * la.out_features * (la.row_blocks - 1) * acc_w
                               * tech.e_add_per_bit_j) / n
            util = float(np.mean([t.rows_used * t.phys_cols / (t.rows * t.cols) for t in la.tiles]))
            prog_t = sum(t.program_time_s for t in la.tiles) / tech.tiles_programmed_in_parallel
            prog_e = sum(t.program_energy_j for t in la.tiles)
            where = "analog"
        else:
            any_digital = True
            e["digital_mac"] = la.macs * tech.e_digital_mac_j / n
            e["buffer"] = la.vectors * (la.in_features * la.in_bits + la.out_features * acc_w) \
                * tech.e_buffer_per_bit_j / n
            latency = la.macs / n / (tech.digital_macs_per_cycle * tech.f_clk_hz)
            area, util, prog_t, prog_e, where = 0.0, 0.0, 0.0, 0.0, "digital"
        e["movement"] = la.out_elements * la.out_bits * tech.e_move_per_bit_j / n
        layers.append(LayerCost(la.name, la.op, where, la.macs / n, e, latency, area * 1e-6,
                                len(la.tiles), util, prog_t, prog_e))
    dig_area = (tech.digital_macs_per_cycle * tech.digital_mac_area_um2 * 1e-6) if any_digital else 0.0
    return CostReport(activity.model_name, n, activity.source, cost.node,
                      cost.adc_model if corner is None else f"{corner} corner", layers,
                      digital_area_mm2=dig_area, configuration=activity.configuration)
