"""Fitting norsim's device layer to a chip's measurements (``norsim fit``): readers of the
measurement formats, one fitter per measurement kind, uncertainty and degeneracy analysis, an
experiment plan, the preset writer and a generator of synthetic measurements."""
