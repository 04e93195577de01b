"""Branch-free elementary functions of the SIMD kernels: accuracy against libm/NumPy,
special values, and the numba versions bit-identical to their NumPy twins."""

import numba
import numpy as np
import pytest

from norsim.device import vecmath as vm


@numba.njit(error_model="numpy")
def _apply(kind, x, y):
    out = np.empty(x.size)
    for i in range(x.size):
        if kind == 0:
            out[i] = vm.log_pos(x[i])
        elif kind == 1:
            out[i] = vm.log1p_pos(x[i])
        elif kind == 2:
            out[i] = vm.exp_nonpos(x[i])
        elif kind == 3:
            out[i] = vm.cos_turns(x[i])
        elif kind == 5:
            out[i] = vm.softplus_sigmoid(x[i])[0]
        elif kind == 6:
            out[i] = vm.softplus_sigmoid(x[i])[1]
        elif kind == 7:
            out[i] = vm.softplus_sigmoid(x[i])[2]
        else:
            out[i] = vm.box_muller(x[i], y[i])
    return out


def _ulps(a, ref):
    return np.abs(a - ref) / np.spacing(np.abs(ref))


RNG = np.random.default_rng(11)
N = 200_000


def test_log_and_log1p_within_one_ulp():
    x = RNG.uniform(0.5, 1.0, N) * 10.0 ** RNG.uniform(-300, 300, N)
    assert np.max(_ulps(_apply(0, x, x), np.log(x))) <= 1.0
    assert np.array_equal(_apply(0, x, x), vm.log_pos_np(x))
    x1 = RNG.uniform(0.0, 1.0, N) * 10.0 ** RNG.uniform(-30, 30, N)
    got = _apply(1, x1, x1)
    assert np.max(_ulps(got, np.log1p(x1))) <= 1.0
    assert np.array_equal(got, vm.log1p_pos_np(x1))


def test_exp_within_one_ulp_down_to_underflow():
    x = -RNG.uniform(0.0, 1.0, N) * 10.0 ** RNG.uniform(-20, np.log10(708.0), N)
    got = _apply(2, x, x)
    assert np.max(_ulps(got, np.exp(x))) <= 1.0
    assert np.array_equal(got, vm.exp_nonpos_np(x))
    tiny = -RNG.uniform(708.5, 745.0, 1000)  # subnormal results: within one subnormal step
    assert np.max(np.abs(_apply(2, tiny, tiny) - np.exp(tiny))) <= 5e-324


def test_special_values():
    assert _apply(1, np.array([0.0, np.inf, 1e-300]), np.zeros(3)).tolist() == [0.0, np.inf, 1e-300]
    assert _apply(0, np.array([1.0, np.inf]), np.zeros(2)).tolist() == [0.0, np.inf]
    e = _apply(2, np.array([0.0, -np.inf, -800.0, -1e-300]), np.zeros(4))
    assert e.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert vm.exp_nonpos_np(np.array([-np.inf]))[0] == 0.0


def test_cos_turns_against_cos():
    u = np.concatenate([RNG.uniform(0.0, 1.0, N), RNG.uniform(-40.0, 40.0, N),
                        np.arange(0, 9) / 8.0])
    got = _apply(3, u, u)
    # reference on the exactly reduced turn (2 pi u itself rounds by |2 pi u| eps)
    assert np.max(np.abs(got - np.cos(2.0 * np.pi * (u - np.round(u))))) < 2e-15
    assert np.array_equal(got, vm.cos_turns_np(u))
    assert got[-9:].tolist() == pytest.approx([1, np.sqrt(.5), 0, -np.sqrt(.5), -1,
                                               -np.sqrt(.5), 0, np.sqrt(.5), 1], abs=2.3e-16)


def test_box_muller_is_standard_normal_and_twin():
    u1 = (RNG.integers(0, 2**53, N) + 0.5) / 2.0**53
    u2 = RNG.uniform(0.0, 1.0, N)
    z = _apply(4, u1, u2)
    assert np.array_equal(z, vm.box_muller_np(u1, u2))
    ref = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    assert np.max(np.abs(z - ref)) < 1e-14
    assert abs(z.mean()) < 5 / np.sqrt(N) and abs(z.std() - 1.0) < 0.01


def test_softplus_sigmoid_against_numpy_and_twin():
    """ln(1 + e^h), sigma(h) and 1 - sigma(h) over the whole range (deep negative to large
    positive h): within a few ulps of NumPy's logaddexp / expit-style references, 1 - sigma
    without cancellation (relative accuracy where it underflows towards 0), twin identical."""
    h = np.concatenate([RNG.uniform(-1.0, 1.0, N // 4) * 10.0 ** RNG.uniform(-12, 2.8, N // 4),
                        RNG.uniform(-800.0, 800.0, N // 4), np.array([0.0, -0.0, 1e-300])])
    sp, sg, sgc = (_apply(k, h, h) for k in (5, 6, 7))
    sp_np, sg_np, sgc_np = vm.softplus_sigmoid_np(h)
    assert np.array_equal(sp, sp_np) and np.array_equal(sg, sg_np) and np.array_equal(sgc, sgc_np)
    ref_sp = np.logaddexp(0.0, h)
    assert np.max(_ulps(sp[ref_sp > 0], ref_sp[ref_sp > 0])) <= 2.0
    # sigma(h) = e^h / (1 + e^h) for h < 0 and 1 / (1 + e^-h) for h >= 0, in extended precision
    hl = h.astype(np.longdouble)
    e = np.exp(-np.abs(hl))
    ref_sg = np.where(h >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float64)
    ref_sgc = np.where(h >= 0, e / (1 + e), 1 / (1 + e)).astype(np.float64)
    for got, ref in ((sg, ref_sg), (sgc, ref_sgc)):
        tiny = ref < 1e-300  # subnormal / underflowed: absolute check
        assert np.max(_ulps(got[~tiny], ref[~tiny])) <= 3.0
        assert np.max(np.abs(got[tiny] - ref[tiny])) <= 1e-310
    assert np.array_equal(sg + sgc, np.ones_like(h)) or np.max(np.abs(sg + sgc - 1.0)) <= 2.3e-16


def test_softplus_sigmoid_special_values():
    h = np.array([-np.inf, np.inf, 0.0, -800.0, 800.0])
    sp, sg, sgc = (_apply(k, h, h) for k in (5, 6, 7))
    assert sp.tolist() == [0.0, np.inf, np.log(2.0), 0.0, 800.0]
    assert sg.tolist() == [0.0, 1.0, 0.5, 0.0, 1.0]
    assert sgc.tolist() == [1.0, 0.0, 0.5, 1.0, 0.0]
    twin = vm.softplus_sigmoid_np(h)
    assert all(np.array_equal(a, b) for a, b in zip((sp, sg, sgc), twin))
