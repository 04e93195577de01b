"""Published NOR-flash CIM designs configured as their papers describe them.

Each :class:`Design` sets only what its source discloses (array size, bits, node, clock);
every other parameter stays at the ``nor40`` preset / 40 nm technology default, frozen
before any comparison. A parameter fitted to a published figure is listed in ``fitted`` with
the figure it was fitted to; the design's ``second`` figure is never used for fitting.

The workload of every design is one fully used tile (random weight codes over the encodable
range, random input codes over the full input range, seeded) run through
:class:`~norsim.array.nor_array.NorArray`: its own event counts feed
:func:`norsim.cost.model.estimate`-style formulas, and the chip figures scale the tile by the
number of tiles that run at once. Results are tabulated in docs/validation.md ("Cost model vs
published chips") and pinned by tests/test_cost_published.py: every figure within 25 % of the
paper, or listed in the design's ``explained`` (at most one per design, with what the paper
leaves unspecified), or listed in its ``unreached`` with the arithmetic that puts the published
figure out of reach of the disclosed configuration (the design is then provisional).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from norsim.cost import model as cm
from norsim.cost import technology as tech_mod
from norsim.cost.model import OPS_PER_MAC

_STREAM_DESIGN = 606
MACRO = ("cell_read", "bitline", "sourceline", "wordline", "wl_driver", "sense", "adc", "shift_add")
SYSTEM = MACRO + ("buffer",)


@dataclass(frozen=True)
class Figure:
    """A published number: ``metric`` names a key of :func:`predict`'s result."""

    metric: str
    value: float
    unit: str
    tag: str          # evidence: measured / simulated / vendor claim
    text: str
    lo: float | None = None   # a published range (value is then its midpoint)
    hi: float | None = None

    def ratio(self, predicted: float) -> float:
        """predicted / published; for a range, against the nearer end (1 inside it)."""
        if self.lo is None or self.hi is None:
            return predicted / self.value
        if self.lo <= predicted <= self.hi:
            return 1.0
        return predicted / (self.lo if predicted < self.lo else self.hi)


@dataclass(frozen=True)
class Design:
    name: str
    source: str
    overrides: dict            # SimConfig fields the paper discloses (and fitted ones)
    n_tiles: int               # tiles on the chip (area)
    active_tiles: float        # tiles computing at once (throughput)
    scope: tuple               # energy components the published figure covers
    headline: Figure
    second: Figure
    fitted: dict = field(default_factory=dict)   # field -> why / to what
    notes: str = ""
    evidence: str = ""         # silicon / post-layout simulation / simulation / vendor claim
    explained: dict = field(default_factory=dict)  # metric -> why it may miss 25 %
    #: metric -> the arithmetic showing that the published figure needs more undisclosed
    #: parameters than one fit can set (tested by the design's own test)
    unreached: dict = field(default_factory=dict)

    @property
    def provisional(self) -> str:
        """Why the design does not meet the 25 % criterion yet ('' when it does)."""
        return "; ".join(self.unreached.values())


#: nor40 fields the cost-model workload turns off: noise changes no event count but costs time
_QUIET = {"array.noise.shot_enabled": False, "array.noise.rtn_enabled": False,
          "array.noise.ktc_enabled": False, "array.adc.range_mode": "physical",
          "mapping.programming": "ideal"}

#: Cost-model choices of issue 23 applied to every design: the ADC survey's envelope and the
#: ADC area fitted to published converters (the CostConfig / TechConfig defaults, which the
#: nor40 preset's [cost] section now also carries: these overrides change nothing there and
#: keep the designs on the issue-23 model if the preset's choice moves).
_MODEL = {"cost.adc_model": "survey", "cost.tech.adc_area_base_um2": 470.0,
          "cost.tech.adc_area_per_level_um2": 1.76}

TOLERANCE = 0.25  # |predicted / published - 1| for every figure not explained

DESIGNS: dict[str, Design] = {
    "mahmoodi2018": Design(
        name="Mahmoodi & Strukov, DAC 2018: 55 nm eNOR 400x400 5-bit current-mode VMM",
        source="doi:10.1145/3195970.3195989 (abstract); research notes 4.5",
        overrides={"cost.node": "55nm", "array.rows": 400, "array.cols": 800,
                   "array.encoding.weight_bits": 5, "array.encoding.input_bits": 5,
                   "array.encoding.input_scheme": "current_mirror",
                   "array.encoding.subtraction": "analog", "array.adc.bits": 5,
                   "array.adc.columns_per_adc": 1, "device.read.t_read_s": 2.5e-9,
                   "cost.tech.t_adc_per_bit_s": 2.5e-9 / 6},
        n_tiles=1, active_tiles=1, scope=MACRO, evidence="post-layout simulation",
        headline=Figure("tops_per_w", 1680.0, "TOPS/W", "simulated",
                        "1.68 POps/J (post-layout)"),
        second=Figure("tops_per_mm2", 39.45, "TOPS/mm^2", "simulated",
                      "39.45 TOps/mm^2 (post-layout)"),
        notes="Disclosed and configured: 55 nm, 400 x 400 weights (differential pairs, 800 "
              "physical columns, analog subtraction), 5-bit inputs and weights, inputs merged "
              "into the gate-coupled current-mode front end (input_scheme 'current_mirror', one "
              "cycle), 400 MHz operation (2.5 ns read and 2.5 ns per conversion, one ADC per "
              "output column). The paper's ADC is current-mode algorithmic; energy uses the "
              "ADC survey's envelope at the 400 MHz conversion rate. Macro scope: no buffers."),
    "jin55nm": Design(
        name="Jin et al.: 55 nm 8-Mb embedded-NOR CIM SoC",
        source="synapsesocial.com listing of the paper's abstract; research notes 4.5",
        overrides={"cost.node": "55nm", "array.encoding.weight_bits": 8,
                   "array.encoding.weight_scheme": "bit_sliced",
                   "array.encoding.bits_per_cell": 3, "array.encoding.input_bits": 8},
        n_tiles=128, active_tiles=6.0, scope=SYSTEM, evidence="silicon",
        headline=Figure("tops", 0.16, "TOPS", "measured", "0.16 TOPS (at 21.4 mW)"),
        second=Figure("tops_per_w", 7.48, "TOPS/W", "measured", "7.48 TOPS/W (whole SoC)"),
        fitted={"active_tiles": "tiles computing at once, fitted to the 0.16 TOPS throughput "
                                "(the SoC's array parallelism is not disclosed)"},
        notes="Disclosed and configured: 55 nm, 8 Mb of NOR cells (128 arrays of the nor40 "
              "256 x 256), INT8 weights (bit-sliced over nor40 3-bit-magnitude cells) and "
              "INT8 inputs; ADC resolution undisclosed (nor40 6 bits). Voltage sensing and the sampling scheme are not "
              "modelled (nor40 current integration). System scope: tile buffers included; "
              "the SoC's CPU, accelerator and I/O are not modelled. TOPS/W does not depend "
              "on the fitted parallelism (no static power in the model)."),
    "mythic_m1076": Design(
        name="Mythic M1076 (76 AMP tiles, 40 nm embedded flash), vendor figures",
        source="hyundaimib.com / electropages 2021 / mythic-ai.com; research notes 4.1",
        overrides={"cost.node": "40nm", "array.rows": 1024, "array.cols": 2048,
                   "array.encoding.weight_bits": 8, "array.encoding.input_bits": 8,
                   "device.levels.i_unit_a": 7.0e-8 / 127,
                   "device.read.t_read_s": 7.3e-7},
        n_tiles=76, active_tiles=76, scope=SYSTEM, evidence="vendor claim (silicon product)",
        headline=Figure("tops", 26.0, "TOPS", "vendor claim", "26 TOPS (INT8)"),
        second=Figure("power_w", 3.5, "W", "vendor claim", "3-4 W", lo=3.0, hi=4.0),
        fitted={"device.read.t_read_s": "read (integration) time per input bit, fitted to "
                                        "26 TOPS with all 76 tiles computing"},
        explained={"power_w": "the vendor's 3-4 W is the whole M1076 (PCIe, RISC-V and SIMD "
                              "cores, NoC, SRAM, I/O); the model covers the 76 analog tiles "
                              "and their buffers only, so it must come out lower"},
        notes="Disclosed and configured: 40 nm, 76 tiles of ~1.05 M 8-bit weights (1024 x "
              "1024 weights, one cell per weight magnitude on a differential pair: 2048 "
              "physical columns), 8-bit inputs, ADCs on outputs (resolution undisclosed: "
              "nor40 6 bits). Cell current range kept at nor40's (top level 70 nA), so "
              "device.levels.i_unit_a = 70 nA / 127 (derived, not fitted). System scope "
              "covers tile buffers; PCIe, the RISC-V/SIMD cores and the NoC are not modelled."),
    "zhang2021": Design(
        name="Zhang et al., ISCAS 2021: 40 nm 1 Mb MLC NOR-flash CIM, 8-bit SAR ADC",
        source="doi:10.1109/ISCAS51556.2021.9401600 (abstract only)",
        overrides={"cost.node": "40nm", "array.encoding.weight_bits": 4,
                   "array.encoding.input_bits": 4, "array.adc.bits": 8,
                   "array.encoding.subtraction": "analog"},
        n_tiles=8, active_tiles=8, scope=MACRO, evidence="simulation (ISCAS paper; "
                                                         "silicon not stated in the abstract)",
        headline=Figure("tops_per_w", 35.6, "TOPS/W", "simulated", "35.6 TOPS/W (4-bit MAC)"),
        second=Figure("tops", 3.277, "TOPS", "simulated", "peak 3.277 TOPS"),
        unreached={"tops": "3.277 TOPS on 262,144 4-bit weights is one product per "
                           "2 x 262,144 / 3.277e12 = 160 ns, 40 ns per input bit; nor40's "
                           "undisclosed-here read (100 ns integration + settling) and ADC "
                           "sharing (8 channels x 9 ns = 72 ns per 8-bit SAR) each exceed "
                           "40 ns, so one fitted parameter cannot reach it (0.40x); both "
                           "set (30 ns read, 4 channels per ADC) give 1.11x"},
        notes="Disclosed and configured: 40 nm, 1 Mb of 2-bit MLC cells (512 k cells = 8 "
              "nor40 arrays of 256 x 256, one differential pair per 4-bit weight: 262,144 "
              "weights), 4-bit weights and inputs, 8-bit SAR ADC, and the readout chain "
              "'current interface circuit -> multi-level analog shift amplifier (AS-Amp) -> "
              "8-bit SAR-ADC': the AS-Amp combines the cells of one weight in analog before "
              "its single conversion, so one conversion per weight column and input bit "
              "(subtraction = 'analog'; an interpretation of the abstract, not a fit: two "
              "conversions per weight give 0.55x TOPS/W, one per product with analog input "
              "bits 2.35x, tested). Not disclosed (nor40 kept): array size, bit-serial "
              "inputs, 8 channels per ADC, read time. Macro scope: no buffers."),
}


def design_config(design: Design):
    """The nor40 preset with the design's disclosed (and fitted) fields."""
    from norsim.config.presets import load_preset

    return load_preset("nor40").with_overrides({**_QUIET, **_MODEL, **design.overrides})


def tile_workload(cfg, rng: np.random.Generator, vectors: int = 8):
    """A fully used tile with random weights and inputs after ``vectors`` multiplies."""
    from norsim.array import encodings as enc_mod
    from norsim.array.nor_array import NorArray
    from norsim.mapping.mapper import _col_block

    enc = cfg.array.encoding
    limit = enc_mod.weight_limit(enc)
    n_out = _col_block(cfg)
    w = rng.integers(-limit, limit + 1, size=(cfg.array.rows, n_out))
    arr = NorArray.from_weights(w, cfg, rng)
    x = rng.integers(0, 1 << enc.input_bits, size=(vectors, cfg.array.rows))
    arr.events.reset()
    arr.matmul(x, rng)
    return arr


def predict(design: Design, *, vectors: int = 8, seed: int = 0) -> dict:
    """Predicted chip figures of ``design``: tops, tops_per_w, power_w, area_mm2,
    tops_per_mm2, energy_per_mac_j, mvm_interval_s, plus the energy breakdown (J per MVM)."""
    cfg = design_config(design)
    arr = tile_workload(cfg, cfg.rng(_STREAM_DESIGN, seed), vectors)
    t = cm.tile_activity(arr)
    el = cm.Electrical.from_sim(cfg)
    tech = tech_mod.effective_tech(cfg.cost)
    energy = {c: v / vectors for c, v in cm._tile_energy(t, el, tech, cfg.cost.adc_model).items()
              if c in design.scope}
    macs = t.rows_used * t.n_out
    interval, latency = cm.tile_timing(t, el, tech)
    e_mvm = sum(energy.values())
    tops = design.active_tiles * OPS_PER_MAC * macs / interval / 1e12
    tops_per_w = OPS_PER_MAC * macs / e_mvm / 1e12
    area = design.n_tiles * cm.tile_area_um2(t, el, tech) * 1e-6
    return {"tops": tops, "tops_per_w": tops_per_w, "power_w": tops / tops_per_w,
            "area_mm2": area, "tops_per_mm2": tops / area, "energy_per_mac_j": e_mvm / macs,
            "mvm_interval_s": interval, "mvm_latency_s": latency, "macs_per_tile": macs,
            "energy_per_mvm_j": energy}


def validation_table(designs: dict[str, Design] | None = None) -> list[dict]:
    """Predicted vs published for every design and both of its figures."""
    rows = []
    for key, d in (designs or DESIGNS).items():
        p = predict(d)
        for role, f in (("headline", d.headline), ("second", d.second)):
            ratio = f.ratio(p[f.metric])
            rows.append({"design": key, "role": role, "metric": f.metric, "published": f.value,
                         "unit": f.unit, "tag": f.tag, "predicted": p[f.metric],
                         "ratio": ratio, "ratio_to_value": p[f.metric] / f.value,
                         "fitted": role == "headline" and bool(d.fitted),
                         "evidence": d.evidence,
                         "within_tolerance": abs(ratio - 1.0) <= TOLERANCE,
                         "explained": d.explained.get(f.metric, ""),
                         "unreached": d.unreached.get(f.metric, ""),
                         "provisional": d.provisional})
    return rows


def with_fit(design: Design, **changes) -> Design:
    """A copy of ``design`` with some fields replaced (for fitting studies)."""
    return dataclasses.replace(design, **changes)
