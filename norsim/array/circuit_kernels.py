"""Numba kernels of circuit mode, each with its NumPy reference twin (re-exported here from
:mod:`~norsim.array.circuit_iv` (cell evaluation, level tables, local model),
:mod:`~norsim.array.circuit_linear` (factorised network, chains, straps),
:mod:`~norsim.array.circuit_exact` (branch-free exact evaluation) and
:mod:`~norsim.array.circuit_batch` (the default per-vector kernel)).

- :func:`tile_iv` (twin :func:`tile_iv_reference`, the device layer's NumPy path): the I-V
  and derivatives of every cell of a tile for a batch, batch-last (R, C, B). Circuit mode
  evaluates cells at terminal voltages that move by millivolts between evaluations, so a
  split-gate cell's internal node is restarted from a prediction (previous node plus its
  sensitivities to V_D and V_S) and needs one or two Newton steps. :func:`split_gate_warm`
  (twin :func:`split_gate_reference`) is the same for broadcast arguments.
- :func:`local_model` (twin :func:`local_model_reference`): the cells' local exponential
  model inside a Newton step.
- :class:`FactorSolver` (twin: SuperLU's own ``solve``): applies a ``splu`` factorisation to
  a whole batch of right-hand sides in one sweep of the factors.
- :func:`max_abs_diff_cols` (twin: ``np.abs(a - b).max(axis=0)``).
- :func:`_solve_batch_kernel`: the default solver, every vector of a batch on its own (twin:
  the reference iteration in ``norsim.array.circuit``). Its pieces: :func:`solve_chains`
  (twin :func:`solve_chains_reference`, a dense solve), the Thomas sweeps of identical
  chains; :func:`certified_error`, the contraction bound that stops its sweeps (tested
  against the true distance to the fixed point); :func:`_exact_row`, the vectorised exact
  evaluation of a row of cells (twin: :func:`_split_point` per cell) with :func:`_ekv_v`,
  :func:`exp_nonpos`, :func:`log1p_unit` (twins: ``_ekv_point``, ``np.exp``, ``np.log1p``);
  :func:`_model_currents` (twin :func:`local_model_lines_reference`); :func:`nominal_tables`
  (twin :func:`tile_iv`).

``tests/test_circuit_kernels.py`` proves each pair equal. The EKV equations are those of
``norsim.device.iv`` (``_ekv_point``, inlined; :func:`_ekv_v` writes them out with
branch-free math for vectorised loops); the tests and the ngspice cross-check keep them in
step with the device layer.
"""

from __future__ import annotations

# re-exports: the historical import path of every kernel and twin
from norsim.array.circuit_iv import (_arrays, _ekv, _gather_levels_kernel, _local_model_kernel,
                                     _local_model_lines_kernel, _log_sensitivities_kernel,
                                     _nominal_table_kernel, _split_gate_warm_kernel, _split_point,
                                     _tile_iv_kernel, gather_levels, gather_levels_reference,
                                     INTERNAL_NODE_STEP_V, local_model, local_model_lines,
                                     local_model_lines_reference, local_model_reference,
                                     log_sensitivities, log_sensitivities_reference,
                                     nominal_tables, split_gate_reference, split_gate_warm,
                                     tile_iv, tile_iv_reference)
from norsim.array.circuit_linear import (_chains_axis0, _chains_axis1, _lu_solve_kernel,
                                         _max_abs_diff_kernel, _solve_sl, _strap_correct,
                                         _strap_correct_batch, chain_coefficients, FactorSolver,
                                         max_abs_diff_cols, no_strap, solve_chains,
                                         solve_chains_reference, strap_coefficients, strap_correct,
                                         thomas_varying, thomas_varying_reference)
from norsim.array.circuit_exact import (_ekv_v, _exact_row, _exp_mode, _model_currents,
                                        _model_loop, _series, eval_batch, exp_nonpos, EXP_SERIES,
                                        log1p_unit)
from norsim.array.circuit_batch import (_anchor_ingredients, _solve_batch_kernel, certified_error,
                                        RHO_MAX, tile_ingredients)

__all__ = [
    "_arrays", "_ekv", "_gather_levels_kernel", "_local_model_kernel",
    "_local_model_lines_kernel", "_log_sensitivities_kernel", "_nominal_table_kernel",
    "_split_gate_warm_kernel", "_split_point", "_tile_iv_kernel", "gather_levels",
    "gather_levels_reference", "INTERNAL_NODE_STEP_V", "local_model", "local_model_lines",
    "local_model_lines_reference", "local_model_reference", "log_sensitivities",
    "log_sensitivities_reference", "nominal_tables", "split_gate_reference", "split_gate_warm",
    "tile_iv", "tile_iv_reference", "_chains_axis0", "_chains_axis1", "_lu_solve_kernel",
    "_max_abs_diff_kernel", "_solve_sl", "_strap_correct", "_strap_correct_batch",
    "chain_coefficients", "FactorSolver", "max_abs_diff_cols", "no_strap", "solve_chains",
    "solve_chains_reference", "strap_coefficients", "strap_correct", "thomas_varying",
    "thomas_varying_reference", "_ekv_v", "_exact_row", "_exp_mode", "_model_currents",
    "_model_loop", "_series", "eval_batch", "exp_nonpos", "EXP_SERIES", "log1p_unit",
    "_anchor_ingredients", "_solve_batch_kernel", "certified_error", "RHO_MAX",
    "tile_ingredients"]
