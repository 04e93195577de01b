"""Per-vector IR drop in network runs (mapping.ir_drop = 'network'): the modal surrogate
against exact circuit solves, its certification during a run, its limits."""

import numpy as np
import pytest

from norsim.array.ir_modes import ModalIrSurrogate
from norsim.array.spice import check_setup
from norsim.config.presets import load_preset
from norsim.errors import ConfigError, InputError
from norsim.mapping import engine, mapper
from norsim.mapping.ir_drop import _attach_network, check_ir, ir_check_summary
from norsim.mapping.random_models import random_lenet


def _surrogate(n, scale=1.0, seed=1):
    cfg = load_preset("nor40")
    vth, _, _, model = check_setup(cfg, n, n, seed)
    w = cfg.array.wires.scaled(scale)
    from norsim.array.circuit import CircuitSolver
    i_on = CircuitSolver(vth, cfg, model, wires=w).nominal(
        np.full((1, n), cfg.device.read.v_select_on_v))[0][0]
    return ModalIrSurrogate(vth, cfg, i_on, model=model, wires=w), i_on


def test_surrogate_tracks_circuit_mode_per_vector():
    """Random bit-planes (each with its own fraction of rows on) of a 96 x 96 tile with the
    preset's straps and wires x4: the per-vector IR effect varies by several times across
    vectors, and the surrogate follows it to a few % of the largest effect."""
    sur, i_on = _surrogate(96, 4.0)
    rng = np.random.default_rng(3)
    x = (rng.random((12, 96)) < rng.uniform(0.1, 1.0, (12, 1))).astype(np.float32)
    exact = sur.exact_delta(x)
    effect = np.abs(exact).max(axis=1)
    assert effect.max() > 3 * effect.min()  # a per-vector effect, not a static one
    err = np.abs(sur.delta(x) - exact).max()
    assert err <= 0.03 * effect.max()
    # the static alternative (each vector's effect as the mean fraction of its current)
    frac = (exact.sum() / (x @ i_on).sum())
    static_err = np.abs(frac * (x @ i_on) - exact).max()
    assert err < 0.25 * static_err


def test_strap_modes_carry_a_half_used_tile():
    """A 128 x 128 tile conducting only in its left half (a 64-channel layer's tile), preset
    wires and straps: against circuit mode the default four strap modes follow the
    column-asymmetric rise to 2 % of the largest effect; one or two modes miss it by > 10 %."""
    cfg = load_preset("nor40")
    vth, _, _, model = check_setup(cfg, 128, 128, 1)
    vth[:, 64:] = 8.0  # erased-off, unused columns
    from norsim.array.circuit import CircuitSolver
    i_on = CircuitSolver(vth, cfg, model).nominal(
        np.full((1, 128), cfg.device.read.v_select_on_v))[0][0]
    rng = np.random.default_rng(6)
    x = (rng.random((8, 128)) < rng.uniform(0.2, 1.0, (8, 1))).astype(np.float32)
    x[0] = 1.0  # every row on: the tile's largest effect
    sur = ModalIrSurrogate(vth, cfg, i_on, model=model)
    exact = sur.exact_delta(x)
    effect = np.abs(exact).max()
    assert np.abs(sur.delta(x) - exact).max() <= 0.02 * effect
    for m in (1, 2):
        few = ModalIrSurrogate(vth, cfg, i_on, model=model, modes_sl=m)
        assert np.abs(few.delta(x) - exact).max() > 0.1 * effect


def test_surrogate_is_first_order_in_the_wire_resistance():
    """First order in the wire resistance: the surrogate's change is proportional to R
    (halving every resistance halves it, to its second-order terms)."""
    rng = np.random.default_rng(4)
    x = (rng.random((4, 48)) < 0.6).astype(np.float32)
    d1 = _surrogate(48, 0.02)[0].delta(x)
    d2 = _surrogate(48, 0.01)[0].delta(x)
    np.testing.assert_allclose(d1, 2 * d2, rtol=2e-3)
    assert np.abs(_surrogate(48, 1e-6)[0].delta(x)).max() < 2e-4 * np.abs(d1).max()


@pytest.fixture(scope="module")
def runs():
    """The same LeNet chip (64 x 64 tiles, heavy terminal and strap pads) built twice, run
    with and without the exact-solve checks: (chip, outputs) each."""
    rng = np.random.default_rng(21)
    model = random_lenet(rng, calib_n=8)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    out = []
    for n_check in (0, 2):
        cfg = load_preset("nor40").with_overrides(
            ["array.rows=64", "array.cols=64", "mapping.programming='ideal'",
             "mapping.ir_drop='network'", f"mapping.ir_check_vectors={n_check}",
             "array.wires.r_bl_terminal_ohm=2000", "array.wires.r_strap_pad_ohm=20.0"])
        chip = mapper.map_model(model, cfg)
        engine.calibrate(chip, images[:4])
        out.append((chip, engine.run(chip, images, batch_size=6).outputs))
    return out


def test_certified_error_holds_against_further_exact_solves(runs):
    """A run certifies the surrogate on the vectors it samples (error in ADC LSB, fraction
    checked); exact solves of other bit-planes of the same tiles stay within the 1/4-LSB
    target the run certified."""
    chip = runs[1][0]
    rep = ir_check_summary(chip)
    assert rep["n_checked"] == 2 * rep["tiles"]  # two vectors per tile over the run
    assert 0 < rep["fraction_checked"] < 0.05
    assert rep["max_ir_effect_lsb"] > 0.2  # an effect worth certifying
    assert rep["max_error_lsb"] <= 0.25
    rng = np.random.default_rng(5)
    for tile in chip.tiles():
        arr = tile.array
        x = (rng.random((6, arr.rows_used)) < 0.5).astype(np.float32)
        err = np.abs(arr.ir_surrogate.delta(x) - arr.ir_surrogate.exact_delta(x)).max()
        assert err / arr.adc.step_a <= 0.25


def test_check_draws_nothing_from_the_run_and_counts_every_plane(runs):
    (chip0, out0), (chip2, out2) = runs
    np.testing.assert_array_equal(out0, out2)  # the checks change no draw of the run
    assert ir_check_summary(chip0)["n_checked"] == 0
    tile = next(chip0.tiles())
    n0 = tile.ir_check.n_vectors
    assert n0 > 0
    check_ir(tile, np.zeros((5, tile.array.rows_used), dtype=np.int64), 3)
    assert tile.ir_check.n_vectors == n0 + 5 * tile.array.nbits_in
    assert tile.ir_check.n_checked == 3
    check_ir(tile, np.zeros((5, tile.array.rows_used), dtype=np.int64), 3)  # done: no more
    assert tile.ir_check.n_checked == 3
    assert tile.ir_check.n_vectors == n0 + 10 * tile.array.nbits_in


def test_network_ir_needs_bit_serial_inputs():
    class _Array:
        bitserial = False
        ir_surrogate = None

    class _Tile:
        array = _Array()

    with pytest.raises(ConfigError, match="mapping.ir_drop"):
        _attach_network(_Tile(), {})


def test_largest_current_plane_is_found():
    """The first check of a tile goes to the plane of largest total current (brute force
    over every plane of a small batch)."""
    from norsim.mapping.ir_drop import _largest_current_plane

    rng = np.random.default_rng(8)
    x = rng.integers(0, 16, size=(40, 24))
    w = rng.uniform(0.5, 2.0, 24).astype(np.float32)
    scores = [(((x >> b) & 1)[r] @ w, r, b) for r in range(40) for b in range(4)]
    _, r, b = max(scores)
    assert _largest_current_plane(x, 4, w) == (r, b)


def test_fused_add_equals_delta_and_skips_unused_columns(monkeypatch):
    """The fast path's in-place add (column-major, the array's own nominal currents) is the
    same arithmetic as delta(planes, icol); columns of off cells get no change, and the
    others are those of the surrogate that keeps every column."""
    import norsim.array.ir_modes as ir_modes

    sur, i_on = _surrogate(48, 4.0)
    rng = np.random.default_rng(6)
    x = (rng.random((7, 48)) < 0.5).astype(np.float32)
    icol = x @ i_on
    cur_t = np.ascontiguousarray(np.vstack([icol.T, np.ones((3, 7))]))  # + spare rows
    sur.add_t(x, cur_t)
    np.testing.assert_allclose(cur_t[:48] - icol.T, sur.delta(x, icol).T, rtol=1e-5,
                               atol=1e-6 * np.abs(sur.delta(x)).max())
    np.testing.assert_array_equal(cur_t[48:], 1.0)  # rows past the tile's columns untouched
    cfg = load_preset("nor40")
    vth, _, _, model = check_setup(cfg, 48, 48, 1)
    vth[:, 30:] = 8.0  # unused columns: erased-off cells
    from norsim.array.circuit import CircuitSolver
    w = cfg.array.wires.scaled(4.0)
    i_half = CircuitSolver(vth, cfg, model, wires=w).nominal(
        np.full((1, 48), cfg.device.read.v_select_on_v))[0][0]
    half = ModalIrSurrogate(vth, cfg, i_half, model=model, wires=w)
    assert half.cidx.tolist() == list(range(30))
    d = half.delta(x)
    assert np.all(d[:, 30:] == 0.0) and np.all(d[:, :30] < 0.0)
    monkeypatch.setattr(ir_modes, "COLUMN_FLOOR", -1.0)  # every column kept
    every = ModalIrSurrogate(vth, cfg, i_half, model=model, wires=w)
    assert every.cidx.size == 48
    np.testing.assert_allclose(d[:, :30], every.delta(x)[:, :30], rtol=1e-6)
    assert np.abs(every.delta(x)[:, 30:]).max() < 1e-40


def test_sparse_path_equals_the_dense_product(monkeypatch):
    """The fused sparse path (projections summed from the on word lines' rows) against the
    reference dense path (one BLAS product, then the combine pass) on the same planes:
    sparse and dense bit-planes, an all-zero plane, a non-binary plane, delta and the
    in-place add; the two differ only by the float32 rounding of the projections. 'auto'
    sends sparse batches to the sparse kernel, dense ones to the product."""
    import norsim.array.ir_modes as ir_modes

    sur, i_on = _surrogate(96, 4.0)
    rng = np.random.default_rng(11)
    dens = np.concatenate([np.full(10, 0.05), np.full(10, 0.15), np.full(6, 0.6)])
    x = (rng.random((26, 96)) < dens[:, None]).astype(np.float32)
    x[3] = 0.0
    xn = x.copy()
    xn[5] *= 0.5  # a non-binary vector takes the multiply loop
    icol = x @ i_on
    for planes in (x, xn):
        ref = sur.delta(planes, path="dense")
        new = sur.delta(planes, path="sparse")
        scale = np.abs(ref).max()
        assert scale > 0
        np.testing.assert_allclose(new, ref, rtol=0, atol=1e-5 * scale)
        assert np.all(new[3] == 0.0)
    # a non-binary plane is its own arithmetic, not rounded to binary
    assert np.abs(sur.delta(xn, path="sparse")[5] - sur.delta(x, path="sparse")[5]).max() > \
        0.1 * np.abs(sur.delta(x)[5]).max()
    cur = {}
    for p in ("dense", "sparse"):
        cur[p] = np.ascontiguousarray(np.vstack([icol.T, np.ones((2, 26))]))
        sur.add_t(x, cur[p], path=p)
    np.testing.assert_allclose(cur["sparse"], cur["dense"], rtol=0,
                               atol=1e-5 * np.abs(sur.delta(x)).max())
    np.testing.assert_array_equal(cur["sparse"][96:], 1.0)

    def no_dense(*a):
        raise AssertionError("dense path taken")

    monkeypatch.setattr(ir_modes, "_combine_kernel", no_dense)
    sparse = x[:20]
    assert np.count_nonzero(sparse) <= ir_modes.SPARSE_MAX_DENSITY * sparse.size
    np.testing.assert_array_equal(sur.delta(sparse), sur.delta(sparse, path="sparse"))
    with pytest.raises(AssertionError, match="dense path"):
        sur.delta(x[20:])  # 60 % ones: the dense product
    with pytest.raises(InputError, match="path"):
        sur.delta(sparse, path="fast")
    sur.path = "dense"  # an instance's default path (bench_circuit times the reference so)
    with pytest.raises(AssertionError, match="dense path"):
        sur.add_t(sparse, np.ascontiguousarray(icol[:20].T))
