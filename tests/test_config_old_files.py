"""An old configuration file either loads or fails with a message that names what changed
(issue 16): the nor40 file that norsim wrote before issue 16 (tests/old_configs/)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from norsim.config import SimConfig
from norsim.errors import ConfigError

OLD = Path(__file__).parent / "old_configs" / "nor40_before_issue16.toml"

# what changed since that file, and a word of the replacement each message must name
CHANGED = {"device.operating_region": "levels",
           "device.retention.a_v_per_decade": "a_v_per_decade_per_v",
           "device.retention.charge_gain": "vth_neutral_v"}


def _delete(text: str, dotted: str) -> str:
    """The TOML text without ``dotted``'s line (in its own [section])."""
    section, key = dotted.rsplit(".", 1)
    out, here = [], False
    for line in text.splitlines():
        m = re.match(r"\[(.+)\]\s*$", line)
        if m:
            here = m.group(1) == section
        elif here and re.match(rf"{re.escape(key)}\s*=", line):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_pre_issue16_file_fails_naming_each_change_then_loads_with_its_values(tmp_path):
    text = OLD.read_text()
    named = []
    for _ in range(len(CHANGED) + 1):
        path = tmp_path / "old.toml"
        path.write_text(text)
        try:
            cfg = SimConfig.load(path)
            break
        except ConfigError as exc:
            # one line: the old field, that it was removed or replaced, and what to use now
            msg = str(exc)
            assert "\n" not in msg and exc.field in CHANGED, msg
            assert re.search(r"removed|replaced", msg) and CHANGED[exc.field] in msg, msg
            named.append(exc.field)
            text = _delete(text, exc.field)   # what the message says: delete the line
    else:
        pytest.fail(f"still failing after deleting {named}")
    assert sorted(named) == sorted(CHANGED)
    # every other value of the old file is kept as written
    old = _flat(tomllib.loads(OLD.read_text()))
    new = _flat(cfg.to_dict())
    kept = {k: v for k, v in old.items() if k not in CHANGED}
    assert kept and all(new[k] == (list(v) if isinstance(v, tuple) else v)
                        for k, v in kept.items()), \
        [k for k, v in kept.items() if new.get(k) != v]

