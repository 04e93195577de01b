"""Least squares with honest uncertainties: covariance from the Jacobian scaled by the residual
variance, correlations, and a degeneracy analysis (SVD of the Jacobian in typical units).

A direction in parameter space is *degenerate* when the data cannot pin it to within one
typical unit of its parameters: with the Jacobian J of the weighted residuals, its columns
multiplied by each parameter's typical scale, and the residual variance s^2, the standard error
along a right singular vector v_k is s / sigma_k. Exact symmetries of the model (sigma_k ~ 0)
and directions the data barely constrain (s / sigma_k > 1) are both reported, with the
combination that *is* determined (for two parameters a, b with v = (v_a, v_b):
a - (v_a s_a) / (v_b s_b) b is unchanged along the degenerate direction).

Parameters held fixed in a fit can be *probed*: their Jacobian columns join the analysis, so a
model symmetry that involves a fixed parameter (coupling ratio vs slope factor) is reported
too, and the free parameters it involves are labelled conditional on the fixed value.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from norsim.errors import ConvergenceError

CONFIDENCE = 0.90
#: a direction whose standard error exceeds this many typical units is degenerate
DEGENERATE_SIGMA_UNITS = 1.0
#: |correlation| above which a pair of free parameters is also reported as degenerate
DEGENERATE_CORRELATION = 0.999


@dataclass(frozen=True)
class Param:
    """One fitted parameter: internal name, starting value, typical scale (the resolution that
    counts as determined), bounds and a human label with unit."""

    name: str
    start: float
    scale: float
    label: str
    unit: str = ""
    lo: float = -np.inf
    hi: float = np.inf
    nuisance: bool = False   # a helper parameter (with a prior): never reported degenerate


@dataclass
class FitOutcome:
    """Values, covariance and degeneracies of one least-squares fit."""

    params: list[Param]
    x: np.ndarray
    cov: np.ndarray
    residuals: np.ndarray          # weighted residuals at the solution
    dof: int
    s2: float                      # residual variance (reduced chi^2 of the weighted residuals)
    degenerate: list[dict] = field(default_factory=list)
    singular_values: list[float] = field(default_factory=list)
    condition_number: float = float("nan")
    conditional: list[dict] = field(default_factory=list)  # symmetries with a fixed parameter

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def value(self, name: str) -> float:
        return float(self.x[self.index(name)])

    def sigma(self, name: str) -> float:
        i = self.index(name)
        return float(np.sqrt(max(self.cov[i, i], 0.0)))

    def interval(self, name: str, level: float = CONFIDENCE) -> tuple[float, float]:
        q = stats.t.ppf(0.5 + level / 2.0, max(self.dof, 1))
        v, s = self.value(name), self.sigma(name)
        return v - q * s, v + q * s

    @property
    def corr(self) -> np.ndarray:
        d = np.sqrt(np.clip(np.diag(self.cov), 1e-300, None))
        c = self.cov / np.outer(d, d)
        return np.clip(c, -1.0, 1.0)

    def is_degenerate(self, name: str) -> bool:
        return any(name in d["parameters"] for d in self.degenerate)


def covariance(jac: np.ndarray, s2: float) -> np.ndarray:
    """s^2 (J^T J)^+ (pseudo-inverse: a degenerate direction gets no finite variance, the
    determined combinations keep theirs)."""
    scale = np.linalg.norm(jac, axis=0)
    scale[scale == 0] = 1.0
    js = jac / scale
    u, sv, vt = np.linalg.svd(js, full_matrices=False)
    keep = sv > sv[0] * 1e-10 if sv.size else sv
    inv = (vt[keep].T / sv[keep] ** 2) @ vt[keep]
    return s2 * inv / np.outer(scale, scale)


def sandwich_covariance(jac: np.ndarray, r: np.ndarray) -> np.ndarray:
    """HC3 heteroscedasticity-consistent covariance (J^T J)^+ J^T diag(r_i^2 / (1 - h_i)^2) J
    (J^T J)^+: right even where the weights are only approximately 1 / variance."""
    bread = covariance(jac, 1.0)
    h = np.einsum("ij,jk,ik->i", jac, bread, jac)
    u = r / np.clip(1.0 - h, 0.05, None)
    meat = (jac * u[:, None]**2).T @ jac
    return bread @ meat @ bread


def cluster_covariance(jac: np.ndarray, r: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cluster-robust sandwich (residuals correlated within a group, e.g. one cell's reads):
    (J^T J)^+ [G / (G - 1) sum_g (J_g^T r_g)(J_g^T r_g)^T] (J^T J)^+."""
    bread = covariance(jac, 1.0)
    g = np.unique(groups, return_inverse=True)[1]
    ng = int(g.max()) + 1
    score = np.zeros((ng, jac.shape[1]))
    np.add.at(score, g, jac * r[:, None])
    meat = score.T @ score * ng / max(ng - 1, 1)
    return bread @ meat @ bread


def degeneracies(jac: np.ndarray, params: list[Param], s2: float,
                 x: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """Degenerate directions of ``jac`` (columns = ``params``) and the singular values."""
    scales = np.array([p.scale for p in params])
    js = jac * scales
    if js.shape[1] == 0:
        return [], np.zeros(0)
    _, sv, vt = np.linalg.svd(js, full_matrices=False)
    out = []
    s = np.sqrt(max(s2, 1e-300))
    for k in range(len(sv)):
        se = s / sv[k] if sv[k] > 0 else np.inf
        if not (se > DEGENERATE_SIGMA_UNITS or sv[k] < sv[0] * 1e-8):
            continue
        v = vt[k]
        involved = [i for i in np.argsort(-np.abs(v)) if abs(v[i]) > 0.2 * np.abs(v).max()]
        if len(involved) < 1:
            continue
        out.append(_describe(params, x, v, scales, involved, se))
    return out, sv


def _describe(params, x, v, scales, involved, se) -> dict:
    names = [params[i].name for i in involved]
    ref = abs(v[involved[0]]) * scales[involved[0]]
    direction = {params[i].name: float(v[i] * scales[i] / ref) for i in involved}
    d = {"parameters": names, "undetermined_direction": direction,
         "standard_error_typical_units": float(se)}
    if len(involved) == 1:
        d["determined"] = f"{params[involved[0]].label}: not determined by these data"
        return d
    a = involved[0]
    terms, combos = [], []
    for b in involved[1:]:
        c = (v[a] * scales[a]) / (v[b] * scales[b])
        terms.append(f"{params[a].name} - ({c:.4g}) x {params[b].name}")
        combos.append({"a": params[a].name, "b": params[b].name, "coefficient": float(c),
                       "value": float(x[a] - c * x[b])})
    d["determined"] = "; ".join(terms) + " (linearised at the solution)"
    d["combinations"] = combos
    return d


def fit(residual_fn, params: list[Param], *, probes: list[Param] | None = None,
        probe_fn=None, max_nfev: int = 200, robust: bool = False,
        hidden_params: int = 0, clusters: np.ndarray | None = None) -> FitOutcome:
    """Minimise ||residual_fn(x)||^2 over the free ``params``; covariance and degeneracies at
    the solution. ``probe_fn(x, probe_values)`` (residuals with the fixed ``probes`` set) lets
    the degeneracy analysis see fixed parameters too. ``robust``: the covariance is the larger
    (per parameter) of s^2 (J^T J)^-1 and the HC3 sandwich (weights only approximate).
    ``hidden_params``: linear parameters solved inside ``residual_fn`` (variable projection):
    they count against the degrees of freedom. ``clusters``: a group label per residual; the
    robust covariance is then the cluster-robust sandwich."""
    x0 = np.array([p.start for p in params], dtype=np.float64)
    lo = np.array([p.lo for p in params])
    hi = np.array([p.hi for p in params])
    x0 = np.clip(x0, lo + 1e-12 * np.abs(lo), hi - 1e-12 * np.abs(hi))
    scales = np.array([p.scale for p in params])
    try:
        res = optimize.least_squares(residual_fn, x0, bounds=(lo, hi), x_scale=scales,
                                     method="trf", max_nfev=max_nfev * len(params),
                                     diff_step=1e-6, ftol=1e-10, xtol=1e-10, gtol=1e-10)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise ConvergenceError(f"fit did not converge: {exc}") from None
    r = res.fun
    dof = max(r.size - len(params) - hidden_params, 1)
    s2 = float(r @ r / dof)
    jac = np.asarray(res.jac, dtype=np.float64)
    all_params, all_jac = list(params), jac
    if probes:
        cols = []
        base = np.array([p.start for p in probes])
        for i, p in enumerate(probes):
            h = p.scale * 1e-4
            up, dn = base.copy(), base.copy()
            up[i] += h
            dn[i] -= h
            cols.append((probe_fn(res.x, up) - probe_fn(res.x, dn)) / (2 * h))
        all_params = list(params) + list(probes)
        all_jac = np.column_stack([jac] + cols)
    degen, sv = degeneracies(jac, list(params), s2, res.x)
    conditional = []
    if probes:
        xs = np.concatenate([res.x, [p.start for p in probes]])
        probe_names = {p.name for p in probes}
        conditional = [d for d in degeneracies(all_jac, all_params, s2, xs)[0]
                       if probe_names & set(d["parameters"])]
    cov = covariance(jac, s2)
    if robust:
        hc = (sandwich_covariance(jac, r) if clusters is None
              else cluster_covariance(jac, r, clusters))
        d = np.sqrt(np.maximum(np.diag(cov), 1e-300))
        f = np.sqrt(np.maximum(np.diag(hc), 0.0)) / d
        f = np.maximum(f, 1.0)
        cov = cov * np.outer(f, f)
    out = FitOutcome(list(params), res.x, cov, r, dof, s2, degen,
                     [float(v) for v in sv],
                     float(sv[0] / sv[-1]) if sv.size and sv[-1] > 0 else float("inf"),
                     conditional)
    corr = out.corr
    for i in range(len(params)):
        for j in range(i + 1, len(params)):
            if params[i].nuisance or params[j].nuisance:
                continue
            if abs(corr[i, j]) > DEGENERATE_CORRELATION and not any(
                    {params[i].name, params[j].name} <= set(d["parameters"]) for d in degen):
                out.degenerate.append({
                    "parameters": [params[i].name, params[j].name],
                    "correlation": float(corr[i, j]),
                    "determined": f"{params[i].name} and {params[j].name} correlated "
                                  f"{corr[i, j]:+.4f}: only a combination is determined"})
    return out


def bootstrap_interval(samples: np.ndarray, level: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates."""
    a = (1.0 - level) / 2.0
    return float(np.quantile(samples, a)), float(np.quantile(samples, 1.0 - a))


@contextlib.contextmanager
def one_thread():
    """Fits and generators evaluate tens to hundreds of cells per call: numba's thread pool
    costs more than it saves there (measured 0.25 ms vs 2-20 ms per 30-point split-gate call
    on a loaded 2-core machine), so they run single-threaded."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def single_threaded(fn):
    """Decorator: run ``fn`` inside :func:`one_thread`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_thread():
            return fn(*args, **kwargs)
    return wrapper
