"""Energy, latency and area from the simulation's own event counts.

``norsim.cost.model.collect(chip, images)`` -> ``ChipActivity``;
``norsim.cost.model.estimate(activity, cfg.cost)`` -> ``CostReport``;
``norsim.cost.report`` formats tables, JSON and the stacked-bar figure;
``norsim.cost.published`` configures published NOR-flash CIM designs.
See docs/cost-model.md.
"""

import norsim.config  # noqa: E402,F401  (SimConfig imports norsim.cost.config: load it first)
