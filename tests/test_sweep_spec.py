"""Sweep specs: grid expansion, ranges, seeds from one root seed, bad input (no processes)."""

import itertools

import numpy as np
import pytest

from norsim.config.sim import SimConfig
from norsim.errors import ConfigError
from norsim.experiments.spec import leaf_fields, load_spec, spec_from_dict


def _spec(axes, seeds=None, **sweep):
    return {"sweep": {"evaluator": "test", **sweep}, "seeds": seeds or {"root": 11, "count": 2},
            "axes": axes}


def test_grid_is_the_product_of_axes_with_linked_fields_moving_together():
    spec = spec_from_dict(_spec({
        "device.read.temperature_k": [250.0, 300.0, 350.0],
        "array.rows,array.cols": [[64, 32], [128, 96]],
    }))
    grid = spec.grid()
    expected = [{"device.read.temperature_k": t, "array.rows": r, "array.cols": c}
                for t, (r, c) in itertools.product([250.0, 300.0, 350.0], [(64, 32), (128, 96)])]
    assert grid == expected
    tasks = spec.tasks()
    assert len(tasks) == 6 * 2 and [t.key for t in tasks] == [(i, r) for i in range(6) for r in range(2)]
    for t in tasks:  # the stored configuration is the base with the axis values and the seed
        cfg = SimConfig.from_toml(t.config_toml)
        assert cfg.device.read.temperature_k == t.axes["device.read.temperature_k"]
        assert (cfg.array.rows, cfg.array.cols) == (t.axes["array.rows"], t.axes["array.cols"])
        assert cfg.seed == t.seed
        assert t.config_toml == cfg.to_toml()  # the canonical TOML of that configuration


def test_nested_axis_tables_are_dotted_paths():
    a = spec_from_dict(_spec({"device": {"read": {"temperature_k": [260.0, 280.0]}}}))
    b = spec_from_dict(_spec({"device.read.temperature_k": [260.0, 280.0]}))
    assert a.grid() == b.grid()


def test_an_axis_given_quoted_and_nested_is_refused_not_dropped(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nevaluator = "test"\n[axes]\n'
                    '"device.read.temperature_k" = [260.0, 280.0]\n'
                    '[axes.device.read]\ntemperature_k = [300.0]\n')
    with pytest.raises(ConfigError, match=r"axes.device.read.temperature_k.*one definition"):
        load_spec(path)


def test_ranges_match_numpy_and_int_fields_get_ints():
    spec = spec_from_dict(_spec({
        "device.read.temperature_k": {"start": 250.0, "stop": 350.0, "num": 5},
        "device.read.t_read_s": {"start": 1e-8, "stop": 1e-6, "num": 3, "scale": "log"},
        "array.rows": {"start": 64, "stop": 256, "num": 3, "scale": "log"},
        "array.cols": {"start": 16, "stop": 64, "step": 16},
    }))
    axes = {a.fields[0]: [v[0] for v in a.values] for a in spec.axes}
    np.testing.assert_allclose(axes["device.read.temperature_k"], np.linspace(250, 350, 5))
    np.testing.assert_allclose(axes["device.read.t_read_s"], np.geomspace(1e-8, 1e-6, 3), rtol=1e-11)
    assert axes["array.rows"] == [64, 128, 256] and all(type(v) is int for v in axes["array.rows"])
    assert axes["array.cols"] == [16, 32, 48, 64]


def test_seeds_are_spawned_from_the_root_seed():
    grid = {"device.read.temperature_k": [250.0, 300.0, 350.0]}
    common = spec_from_dict(_spec(grid, {"root": 99, "count": 4, "mode": "common"}))
    indep = spec_from_dict(_spec(grid, {"root": 99, "count": 4, "mode": "independent"}))

    def as_seed(ss):
        return int(ss.generate_state(1, np.uint64)[0]) >> 1

    chips = np.random.SeedSequence(99).spawn(4)
    per_point = [p.spawn(4) for p in np.random.SeedSequence(99).spawn(3)]
    for t in common.tasks():
        assert t.seed == as_seed(chips[t.replicate]) and t.spawn_key == (t.replicate,)
    for t in indep.tasks():
        assert t.seed == as_seed(per_point[t.index][t.replicate])
        assert t.spawn_key == (t.index, t.replicate)
    seeds = [t.seed for t in indep.tasks()]
    assert len(set(seeds)) == len(seeds)
    # common random numbers: replicate r is the same chip at every point
    assert len({t.seed for t in common.tasks()}) == 4


def test_base_config_file_and_overrides(tmp_path):
    (tmp_path / "base.toml").write_text("seed = 5\n[array]\nrows = 32\n")
    (tmp_path / "s.toml").write_text(
        '[sweep]\nevaluator = "test"\n[base]\nconfig = "base.toml"\n'
        'set = ["array.cols=48"]\n[axes]\n"device.read.temperature_k" = [300.0]\n')
    spec = load_spec(tmp_path / "s.toml")
    cfg = SimConfig.from_toml(spec.tasks()[0].config_toml)
    assert (cfg.array.rows, cfg.array.cols) == (32, 48)
    assert spec.root_seed == 5  # the base config's seed is the default root seed


@pytest.mark.parametrize("axes, field", [
    ({"device.read.temprature_k": [300.0]}, "device.read.temperature_k"),  # suggestion
    ({"device.read": [1.0]}, "device.read"),                                # a section
    ({"seed": [1, 2]}, "seed"),                                             # seeds are not axes
])
def test_unknown_axis_field_is_named(axes, field):
    with pytest.raises(ConfigError) as exc:
        spec_from_dict(_spec(axes))
    assert field in str(exc.value)


@pytest.mark.parametrize("axes, culprit", [
    ({"device.read.temperature_k": [300.0, -5.0]}, "axes.device.read.temperature_k"),
    ({"array.rows": [64, 100.5]}, "axes.array.rows"),
    ({"device.cell.cell_type": ["split_gate", "trench"]}, "axes.device.cell.cell_type"),
    ({"device.read.temperature_k": {"start": 300, "stop": 200, "step": 10}}, "step"),
    ({"device.read.temperature_k": {"start": 300, "stop": 320}}, "num"),
    ({"device.read.temperature_k": {"start": 300, "stop": 320, "num": 3, "sacle": "log"}}, "sacle"),
    ({"device.read.temperature_k": []}, "at least one value"),
    ({"device.read.temperature_k": [300.0, 300.0]}, "distinct"),
    ({"array.rows,array.cols": [[64, 64], [128]]}, "array.rows,array.cols[1]"),
])
def test_bad_axis_values_are_named(axes, culprit):
    with pytest.raises(ConfigError) as exc:
        spec_from_dict(_spec(axes))
    assert culprit in str(exc.value)


@pytest.mark.parametrize("data, culprit", [
    ({"sweep": {"evaluator": "nope"}}, "sweep.evaluator"),
    ({"sweep": {}}, "sweep.evaluator"),
    ({"sweep": {"evaluator": "test"}, "seeds": {"count": 0}}, "seeds.count"),
    ({"sweep": {"evaluator": "test"}, "seeds": {"mode": "shared"}}, "seeds.mode"),
    ({"sweep": {"evaluator": "test"}, "grid": {}}, "spec grid"),
    ({"sweep": {"evaluator": "test", "workers": 3}}, "sweep.workers"),
    ({"sweep": {"evaluator": "test"}, "base": {"set": ["device.nope=1"]}}, "device.nope"),
])
def test_bad_spec_tables_are_named(data, culprit):
    with pytest.raises(ConfigError) as exc:
        spec_from_dict(data)
    assert culprit in str(exc.value)


def test_every_config_leaf_is_a_valid_axis_path():
    known = leaf_fields()
    assert "device.read.temperature_k" in known and "seed" in known
    assert all(not isinstance(v, dict) for v in known.values())


def test_import_norsim_stays_light_and_workers_import_no_numpy_before_init():
    import subprocess
    import sys

    code = ("import sys, norsim, norsim.experiments.worker; "
            "assert callable(norsim.sweep); "
            "assert 'numpy' not in sys.modules, 'numpy imported'; "
            "assert 'pandas' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_sweep_too_large_to_hold_is_refused_before_building_it():
    import time

    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"400000 points x 2 seeds.*split the sweep"):
        spec_from_dict(_spec({"device.read.temperature_k": {"start": 250.0, "stop": 350.0,
                                                            "num": 400_000}}))
    with pytest.raises(ConfigError, match=r"num = 5000000"):
        spec_from_dict(_spec({"device.read.temperature_k": {"start": 250.0, "stop": 350.0,
                                                            "num": 5_000_000}}))
    assert time.perf_counter() - t0 < 10
