"""The back-end seam: what the mapper, the engine and the compensation chain ask of a tile.

A *back-end* holds programmed tiles (one NOR array each, simulated or real) and answers the
host's requests about them. The host side (mapper, engine, compensation, run orchestration)
knows the model, the weight codes it asked for and the configuration; everything it learns
about the hardware comes through the methods of :class:`Backend`. Three back-ends exist:
``sim`` (:mod:`norsim.backend.sim`, today's simulator), ``replay:DIR``
(:mod:`norsim.backend.replay`, recorded answers) and ``remote:HOST:PORT`` (a chip server
behind a socket).

Stability: this interface is frozen for additive changes only (new optional methods, new
optional dataclass fields with defaults). ``API_VERSION`` is bumped when that happens.

Conventions
-----------
* **Tile ids** are strings: ``"<layer>/r<i>c<j>"`` for the weight tile in row block ``i`` and
  column block ``j`` of a layer (:func:`tile_id`), ``"<layer>/r<i>c<j>/ref"`` for its
  reference columns (compensation). They are stable across runs of the same model.
* **Arrays** in requests and answers are plain numpy ndarrays (int64, float64 or bool,
  C-contiguous) and scalars are Python int/float/str, so every dataclass here serialises as
  a JSON header plus raw array payloads (``dataclasses.fields`` names them).
* **Inputs** of :meth:`Backend.mvm` are *unsigned input codes* ``x`` (B, rows) int64 with
  ``0 <= x < 2**input_bits``, one row per input vector, on the tile's rows (signed
  activations are offset by the host, which removes the offset digitally). A chip that
  takes bit planes gets them from its driver (plane ``k`` = ``(x >> k) & 1``, LSB first);
  the answer is the tile's shift-added estimate of ``x @ w`` per logical output column
  (B, outputs) float64, in units of one weight code times one input code, i.e. after the
  ADC, the shift-add over planes and the digital subtraction of differential pairs and
  bit slices. A driver that exposes raw ADC codes returns them too (``MvmResult.codes``).
* **Randomness** (the simulator's noise, the compensation's test patterns) goes through
  *stream keys*: tuples of ints. A stream key names a ``numpy.random.Generator``
  ``cfg.rng(*key)`` (``SimConfig.rng``: the chip configuration's ``seed`` with the key as
  the SeedSequence spawn key) that **the back-end owns**: the first call with a key creates
  it, every later call with the same key continues its sequence, in call order, until
  :meth:`Backend.release` drops it. A run is therefore a deterministic function of
  (configuration, seed, sequence of calls), and a server process that receives the same
  calls in the same order reproduces an in-process run bit for bit; no Generator object
  crosses the seam. Back-ends with physical noise (a real chip) ignore the keys.
* **Configuration**: :meth:`Backend.program` receives the layer's full
  :class:`~norsim.config.sim.SimConfig` (bit widths already set for the layer); it has a
  TOML round trip (``to_toml`` / ``SimConfig.from_toml``) for transport.
* Errors are :class:`norsim.errors.InputError` / ``ConfigError`` naming the tile.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

#: version of this interface (bumped on every additive change)
API_VERSION = 1

#: what :meth:`Backend.read_map` can measure
MAP_QUANTITIES = ("vth", "current")

Stream = tuple  # tuple[int, ...]: a stream key (see the module docstring)


def tile_id(layer: str, row_block: int, col_block: int, reference: bool = False) -> str:
    """The stable id of a tile: ``"<layer>/r<i>c<j>"`` (``+"/ref"`` for its reference
    columns)."""
    base = f"{layer}/r{int(row_block)}c{int(col_block)}"
    return base + "/ref" if reference else base


@dataclass
class BackendInfo:
    """Identity and conditions of the hardware behind a back-end."""

    kind: str
    """Back-end kind: ``'sim'``, ``'replay'`` or ``'remote'``."""
    chip_id: str = ""
    """Identifier of the chip (sim: ``'sim-seed<N>'``; a test chip: its serial)."""
    firmware: str = ""
    """Firmware or simulator version string (sim: ``'norsim <version>'``)."""
    temperature_k: float = float("nan")
    """Operating (read) temperature of the chip, K."""
    time_since_programming_s: float = 0.0
    """Time since the tiles were programmed, s (sim: the configured retention time)."""
    protocol: str = "in-process"
    """Transport: ``'in-process'``, ``'replay-v<N>'`` or the wire protocol's name/version."""
    api_version: int = API_VERSION
    """Version of this interface the back-end implements."""


@dataclass
class ProgrammingReport:
    """What programming one tile did and achieved (:meth:`Backend.program`)."""

    tile_id: str
    """The tile."""
    rows: int
    """Word lines used (rows of the weight block)."""
    phys_cols: int
    """Physical columns used (after the weight encoding: pairs, slices, reference)."""
    outputs: int
    """Logical output columns (columns of the weight block)."""
    vth: np.ndarray
    """Achieved V_th map (rows, phys_cols) float64, V, as read back after programming (and
    after any retention bake / disturb the chip has seen)."""
    failed: np.ndarray | None = None
    """Defect map: (rows, phys_cols) bool, True where a cell failed verify and was not
    repaired (None: not reported)."""
    program_time_s: float = 0.0
    """Programming time of the tile, s (spare columns included)."""
    program_energy_j: float = 0.0
    """Programming energy of the tile, J."""
    pulses: int = -1
    """Program pulses applied to the tile in total (-1: not reported)."""
    failed_cells: int = 0
    """Cells that failed verify and were not repaired."""
    failed_before_repair: int = 0
    """Cells flagged by program-and-verify before column repair."""
    repaired_columns: int = 0
    """Columns replaced by spare columns."""


@dataclass
class MapReading:
    """A measured map of one tile (:meth:`Backend.read_map`) with its conditions."""

    tile_id: str
    """The tile."""
    quantity: str
    """``'vth'`` (V) or ``'current'`` (A, each cell's read current at the read bias)."""
    values: np.ndarray
    """The map (rows, phys_cols) float64."""
    temperature_k: float = float("nan")
    """Temperature of the measurement, K."""
    v_cg_read_v: float = float("nan")
    """Control-gate read voltage of the measurement, V."""
    v_bl_read_v: float = float("nan")
    """Bit-line read voltage of the measurement, V."""


@dataclass
class MvmResult:
    """Answer of :meth:`Backend.mvm` for a batch of input vectors."""

    values: np.ndarray
    """Shift-added estimates (B, outputs) float64 of ``x @ w`` (see the module docstring)."""
    codes: np.ndarray | None = None
    """Raw ADC codes (B * cycles, channels) where the back-end exposes them, else None."""


@dataclass
class Calibration:
    """The periphery state of a tile the host needs for calibration and compensation
    (:meth:`Backend.calibration`); one entry per conversion channel ``h``."""

    tile_id: str
    """The tile."""
    gain: np.ndarray
    """ADC gain per entry of the tile's ADC table (float64)."""
    offset: np.ndarray
    """ADC offset per entry of the ADC table, LSB (float64)."""
    channel_adc: np.ndarray
    """For each conversion channel, its entry in the ADC table (int64)."""
    pos: np.ndarray
    """Physical column read as the positive side of each channel (int64)."""
    neg: np.ndarray
    """Physical column subtracted in analog for each channel, -1 for none (int64)."""
    full_scale_a: float | None
    """ADC full-scale current, A (None: range not set yet)."""
    step_a: float | None
    """Current of one ADC LSB, A (None: range not set yet)."""
    unit_a: float
    """Current of one weight code times one input code, A (scale of the estimates)."""
    lo: float
    """Lowest ADC code."""
    hi: float
    """Highest ADC code."""
    usable_hi: np.ndarray
    """Per channel, the code above which a read may be clipped by the ADC or the
    integrator before it (with a 10 % guard band)."""
    t_read_s: float
    """Read (integration) time of one cycle, s."""
    cycles: int
    """Read cycles per input vector (input bits for bit-serial inputs)."""
    input_bits: int
    """Input code bits."""
    rows: int
    """Rows used."""
    outputs: int
    """Logical output columns."""
    v_cg_read_v: float
    """Present control-gate read voltage, V."""
    bit_serial: bool = True
    """True for bit-serial inputs (the only scheme compensation supports)."""


@dataclass
class PatternSpec:
    """Random test patterns drawn *by the back-end* from the call's stream (a chip's
    built-in self test draws them on chip): ``n`` vectors, vector ``k`` has each row on with
    probability ``densities[k % len(densities)]`` (at least one row on), driven at input
    code ``code`` (default: the largest code)."""

    n: int
    """Number of pattern vectors."""
    densities: tuple
    """Row-on probabilities, cycled over the vectors."""
    code: int = -1
    """Input code of an active row (-1: ``2**input_bits - 1``)."""


@dataclass
class ProbeReading:
    """Test-pattern reads of one tile (:meth:`Backend.probe`), channel by channel."""

    x: np.ndarray
    """The input codes read (B, rows) int64 (drawn by the back-end for a PatternSpec)."""
    codes: np.ndarray
    """ADC code of every channel at every input cycle (B * cycles, channels) float64."""
    expected_lsb: np.ndarray
    """The code an exact chip would give (nominal currents of the programmed levels / LSB,
    no leakage), same shape as ``codes``."""
    charge_c: float
    """Bit-line charge drawn by the reads, C."""


@dataclass
class RetuneReport:
    """What :meth:`Backend.retune_cells` did."""

    cells: int
    """Cells re-tuned."""
    program_time_s: float = 0.0
    """Time of the re-tuning, s."""
    program_energy_j: float = 0.0
    """Energy of the re-tuning, J."""


class Backend(abc.ABC):
    """The seam between the host (mapper, engine, compensation) and the tiles.

    Methods marked *required* must be implemented by every back-end; the others have
    defaults that raise :class:`NotImplementedError` naming the back-end and the method
    (a host step that needs one fails with that message, e.g. compensation on a replay that
    recorded no probe reads).
    """

    kind = "abstract"

    # ---------------------------------------------------------------- identity ----
    @abc.abstractmethod
    def info(self) -> BackendInfo:
        """Chip identity and conditions (*required*)."""

    def tile_ids(self) -> list[str]:
        """Ids of the tiles this back-end holds (programmed or recorded)."""
        return []

    # -------------------------------------------------------------- programming ----
    @abc.abstractmethod
    def program(self, tile_id: str, weights: np.ndarray, config, stream: Stream,
                ) -> ProgrammingReport:
        """Program (or, for recorded/remote chips, load) tile ``tile_id`` with the signed
        integer weight block ``weights`` (rows, outputs) int64 under the layer
        configuration ``config`` (encoding, device, programming settings) (*required*)."""

    def read_map(self, tile_id: str, quantity: str = "vth") -> MapReading:
        """Measure a map of ``quantity`` (``MAP_QUANTITIES``) of a programmed tile."""
        raise self._missing("read_map")

    # ---------------------------------------------------------------- periphery ----
    def calibrate(self, tile_id: str, x: np.ndarray, stream: Stream) -> Calibration:
        """Calibrate the tile's read path on calibration inputs ``x`` (B, rows) (ADC full
        scale from its readings where the range mode is calibrated, wire-resistance
        factors where IR drop is modelled) and return the resulting periphery state."""
        raise self._missing("calibrate")

    def calibration(self, tile_id: str) -> Calibration:
        """The tile's present periphery state (ADC table, channels, range) (*host reads*)."""
        raise self._missing("calibration")

    def set_adc(self, tile_id: str, gain: np.ndarray, offset: np.ndarray,
                full_scale_a: float | None = None, per_channel: bool = False) -> Calibration:
        """Trim the tile's ADC: new ``gain`` / ``offset`` tables and optionally a new full
        scale. ``per_channel=True`` first gives every conversion channel its own table
        entry (then ``gain``/``offset`` have one entry per channel)."""
        raise self._missing("set_adc")

    def set_read_voltage(self, tile_id: str, v_cg: float) -> None:
        """Re-bias the tile's control gates at ``v_cg`` volts (V_th map unchanged)."""
        raise self._missing("set_read_voltage")

    # ------------------------------------------------------------------- reads ----
    @abc.abstractmethod
    def mvm(self, tile_id: str, x: np.ndarray, stream: Stream, purpose: str = "run",
            ) -> MvmResult:
        """Matrix-vector products of the batch of unsigned input codes ``x`` (B, rows)
        (*required*; see the module docstring for units). ``purpose`` is ``'run'`` (inference:
        the sim back-end certifies its IR surrogate on sampled vectors of these) or
        ``'calibration'`` (the pass that follows :meth:`calibrate`)."""

    def probe(self, tile_id: str, stream: Stream, x: np.ndarray | None = None,
              patterns: PatternSpec | None = None) -> ProbeReading:
        """Read test patterns channel by channel: explicit inputs ``x`` (B, rows) or random
        ``patterns`` drawn from ``stream`` (exactly one of the two)."""
        raise self._missing("probe")

    def retune_cells(self, tile_id: str, rows: np.ndarray, cols: np.ndarray) -> RetuneReport:
        """Re-tune the cells at (``rows``, ``cols``) (physical columns) to their programmed
        levels at the present read bias."""
        raise self._missing("retune_cells")

    # ------------------------------------------------------------------ events ----
    def events(self, tile_id: str) -> dict:
        """Event counts of the tile since the last reset (``ArrayEvents.as_dict`` keys);
        empty where the back-end does not count."""
        return {}

    def reset_events(self, tile_id: str) -> None:
        """Zero the tile's event counts."""

    # --------------------------------------------------------------- lifecycle ----
    def release(self, stream: Stream) -> None:
        """Drop the generator of ``stream`` (a later call with the key starts it afresh)."""

    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _missing(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"back-end {self.kind!r} does not support {method}()")


@dataclass
class StreamTable:
    """The generators a back-end owns, by stream key (see the module docstring)."""

    seed_config: object = None
    """The configuration whose ``rng(*key)`` creates a generator (its ``seed`` counts)."""
    live: dict = field(default_factory=dict)
    """Generators by key."""

    def get(self, key: Stream) -> np.random.Generator:
        """The generator of ``key`` (created on first use)."""
        k = tuple(int(v) for v in key)
        g = self.live.get(k)
        if g is None:
            g = self.live[k] = self.seed_config.rng(*k)
        return g

    def release(self, key: Stream) -> None:
        self.live.pop(tuple(int(v) for v in key), None)


def parse_backend(spec: str) -> tuple[str, str]:
    """``'sim'`` / ``'replay:DIR'`` / ``'remote:HOST:PORT'`` -> (kind, argument); a bad spec
    is a one-line InputError."""
    from norsim.errors import InputError

    s = str(spec).strip()
    kind, _, arg = s.partition(":")
    if kind == "sim" and not arg:
        return "sim", ""
    if kind == "replay" and arg:
        return "replay", arg
    if kind == "remote" and arg.count(":") == 1 and arg.rsplit(":", 1)[1].isdigit():
        return "remote", arg
    raise InputError("backend", spec, "'sim', 'replay:DIR' or 'remote:HOST:PORT'")
