"""The QAT method modules in isolation: STE gradients, dynamic threshold, PACT."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from norsim.errors import InputError  # noqa: E402
from norsim.qat.quant import (PactQuantizer, WeightQuantizer, mse_threshold,  # noqa: E402
                              pact_quant, round_ste)

torch.set_num_threads(1)


def test_round_ste_rounds_forward_and_passes_gradient():
    x = torch.tensor([-1.6, -0.4, 0.49, 2.5, 3.51], requires_grad=True)
    y = round_ste(x)
    assert torch.equal(y.detach(), torch.round(x.detach()))
    (y * torch.arange(5.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(5.0))


def _sym_quant_reference(w, t, q):
    s = t / q
    return np.clip(np.round(w / s), -q, q) * s


def test_weight_quantizer_forward_and_ste_gradients_closed_form():
    torch.manual_seed(0)
    w = torch.randn(3, 50, dtype=torch.float64)
    wq = WeightQuantizer(3, bits=4, per_channel=True, reestimate_every=0).double()
    t = torch.tensor([0.8, 1.5, 2.5], dtype=torch.float64)
    with torch.no_grad():
        wq.threshold.copy_(t)
    wq.initialized.fill_(True)
    wr = w.clone().requires_grad_(True)
    y = wq(wr)
    q = 7
    ref = np.stack([_sym_quant_reference(w[i].numpy(), t[i].item(), q) for i in range(3)])
    assert np.allclose(y.detach().numpy(), ref, atol=1e-12)
    g = torch.randn_like(w)
    (y * g).sum().backward()
    # d/dw: 1 inside [-T, T], 0 outside (clipped)
    inside = (w.abs() <= t[:, None]).double()
    assert torch.allclose(wr.grad, g * inside)
    # d/dT: (round(w/s) - w/s)/Q inside, sign(w) outside (LSQ-style STE)
    s = t[:, None] / q
    v = w / s
    dT = torch.where(w.abs() <= t[:, None], (torch.round(v) - v) / q, torch.sign(w))
    assert torch.allclose(wq.threshold.grad, (g * dT).sum(1), atol=1e-10)


def test_codes_are_narrow_symmetric_and_match_fake_quant():
    torch.manual_seed(1)
    w = torch.randn(8, 4, 3, 3) * 0.1
    wq = WeightQuantizer(8, bits=4)
    y = wq(w)
    c = wq.codes(w)
    assert c.abs().max() <= 7 and c.abs().max() == 7
    s = wq.scale().reshape(-1, 1, 1, 1)
    assert torch.allclose(c.float() * s, y, atol=1e-7)


def test_asymmetric_codes_cover_range_with_zero_point():
    torch.manual_seed(2)
    w = torch.rand(4, 64) * 0.5 + 0.1        # all positive: asymmetric is the right tool
    wq = WeightQuantizer(4, bits=4, symmetric=False)
    y = wq(w)
    z = wq.zero_point()
    c = wq.codes(w) + z[:, None].long()     # unsigned codes
    assert c.min() >= 0 and c.max() <= 15
    # 16 levels over [lo, hi] beat 7 positive levels of the symmetric grid
    sym = WeightQuantizer(4, bits=4)
    err_a = ((y - w) ** 2).mean()
    err_s = ((sym(w) - w) ** 2).mean()
    assert err_a < err_s


def test_mse_threshold_is_optimal_among_candidates_and_gaussian_value():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(np.abs(rng.standard_normal((1, 200_000))))
    fr = torch.linspace(0.2, 1.0, 161)
    t = float(mse_threshold(a, 7, fr)[0])
    # known result for a unit Gaussian, 4-bit signed (7 positive levels): optimal clip
    # ~ 2.9 sigma (Banner et al. 2019 ACIQ table: 2.83 for Laplace-free Gaussian, 4b ~ 2.5-3.0)
    assert 2.3 < t < 3.3


def test_dynamic_threshold_tracks_drifting_weights():
    rng = np.random.default_rng(3)
    base = torch.from_numpy(rng.standard_normal((1, 2000)).astype(np.float32))
    track = WeightQuantizer(1, bits=4, per_channel=False, reestimate_every=1, momentum=0.5)
    frozen = WeightQuantizer(1, bits=4, per_channel=False, reestimate_every=0)
    track.train()
    frozen.train()
    errs = []
    for step in range(40):
        sigma = 1.0 + 0.075 * step                # the weight distribution widens 4x
        w = base * sigma
        track(w)
        frozen(w)
        opt = float(mse_threshold(w.abs(), 7, torch.linspace(0.2, 1.0, 33))[0])
        errs.append(abs(float(track.threshold.detach()[0]) - opt) / opt)
    assert max(errs[-10:]) < 0.12                 # lags by ~one step of drift only
    assert float(frozen.threshold.detach()[0]) < 0.4 * opt  # a frozen threshold does not follow
    assert int(track.step) == 40


def test_threshold_learns_by_backprop_between_reestimates():
    torch.manual_seed(4)
    w = torch.randn(1, 500)
    wq = WeightQuantizer(1, bits=4, per_channel=False, reestimate_every=0)
    wq(w)
    t0 = float(wq.threshold.detach())
    opt = torch.optim.SGD(wq.parameters(), lr=0.1)
    # a loss that wants the quantised weights larger: dL/dT < 0 => T grows
    for _ in range(5):
        opt.zero_grad()
        (-wq(w).abs().sum()).backward()
        opt.step()
    assert float(wq.threshold.detach()) > t0


def test_pact_forward_and_gradients():
    x = torch.tensor([-1.0, 0.0, 0.3, 0.74, 1.2, 3.0, 5.0], requires_grad=True)
    alpha = torch.tensor([1.5], requires_grad=True)
    y = pact_quant(x, alpha, 2)          # 3 levels: steps of 0.5
    assert torch.allclose(y.detach(), torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0, 1.5, 1.5]))
    g = torch.arange(1.0, 8.0)
    (y * g).sum().backward()
    # dy/dx = 1 on (0, alpha), dy/dalpha = 1 where x >= alpha
    assert torch.equal(x.grad, torch.tensor([0, 0, 3.0, 4.0, 5.0, 0, 0]))
    assert torch.allclose(alpha.grad, torch.tensor([6.0 + 7.0]))


def test_pact_rounds_half_up_like_the_format():
    alpha = torch.tensor([15.0])
    x = torch.tensor([0.5, 1.5, 2.5])
    assert torch.equal(pact_quant(x, alpha, 4), torch.tensor([1.0, 2.0, 3.0]))


def test_pact_calibration_is_mse_optimal_on_a_heavy_tail():
    rng = np.random.default_rng(5)
    x = rng.exponential(1.0, 20000)
    p = PactQuantizer(4)
    p.calibrate(torch.from_numpy(x.astype(np.float32)))
    alpha = float(p.alpha.detach())

    def mse(a):
        s = a / 15
        return np.mean((np.clip(np.floor(x / s + 0.5), 0, 15) * s - x) ** 2)

    grid = np.linspace(0.5, x.max(), 4000)
    best = min(mse(a) for a in grid)
    assert mse(alpha) <= 1.02 * best
    assert alpha < 0.75 * x.max()         # the tail is clipped


def test_bad_bits_raise_norsim_error():
    with pytest.raises(InputError, match="weight bits"):
        WeightQuantizer(4, bits=1)
    with pytest.raises(InputError, match="momentum"):
        WeightQuantizer(4, momentum=0.0)
