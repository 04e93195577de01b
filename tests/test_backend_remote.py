"""The ``remote:HOST:PORT`` back-end against the reference chip server (a subprocess on the
loopback interface, started and stopped here): the wire format's checks, the demo model end
to end bit for bit against the in-process ``sim``, and one fault per test (corrupt frame,
wrong protocol version, slow server, dropped connection, killed server, a sweep point on a
killed server resumed)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from norsim.backend import wire
from norsim.backend.base import Calibration, MvmResult, PatternSpec, ProgrammingReport

SMALL = {"mapping.calibration_images": 16, "array.rows": 128, "array.cols": 128}


# ------------------------------------------------------------------ helpers
@contextlib.contextmanager
def chip_server(*flags, port=0):
    """Start the reference server; yields (port, process); stops it on exit."""
    p = subprocess.Popen([sys.executable, "-m", "norsim.backend.chip_server", "--port",
                          str(port), "--quiet", *flags], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.strip().isdigit():
            p.kill()
            raise AssertionError(f"chip server did not start: {line!r} {p.stderr.read()!r}")
        yield int(line), p
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                p.kill()
                p.wait()
        p.stdout.close()
        p.stderr.close()


def _frame_bytes(type_=wire.REQUEST, body=None, version=1, rid=1) -> bytearray:
    body = {"method": "mvm", "args": {"x": np.arange(6, dtype=np.uint8).reshape(2, 3)}} \
        if body is None else body
    return bytearray(b"".join(bytes(b) for b in wire.pack_frame(type_, body, version=version,
                                                                request_id=rid)))


def _read(raw: bytes, **kw):
    a, b = socket.socketpair()
    with a, b:
        a.sendall(bytes(raw))
        a.shutdown(socket.SHUT_WR)
        return wire.recv_frame(b, **kw)


def _one_line_error(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


# ------------------------------------------------------------------ the wire format
def test_frame_round_trip_keeps_arrays_dataclasses_and_configs():
    from norsim.config.presets import load_preset

    cfg = load_preset("nor40").with_overrides(SMALL)
    rep = ProgrammingReport("conv1/r0c0", 3, 4, 2, np.linspace(0, 1, 12).reshape(3, 4),
                            failed=np.eye(3, 4, dtype=bool), pulses=17)
    body = {"result": rep, "cfg": cfg, "nan": float("nan"), "ints": {2: "two"},
            "many": [np.zeros((0, 5)), np.arange(5, dtype=np.int64) - 2,
                     np.full((2, 2), 0.1, dtype=np.float32)],
            "pat": PatternSpec(4, (0.1, 0.5))}
    f = _read(_frame_bytes(wire.RESPONSE, body, rid=99))
    assert (f.type, f.version, f.request_id) == (wire.RESPONSE, 1, 99)
    got = f.body["result"]
    assert isinstance(got, ProgrammingReport) and got.pulses == 17
    np.testing.assert_array_equal(got.vth, rep.vth)
    np.testing.assert_array_equal(got.failed, rep.failed)
    assert got.failed.dtype == bool
    assert f.body["cfg"] == cfg                     # TOML round trip, every field
    assert np.isnan(f.body["nan"]) and f.body["ints"] == {2: "two"}
    for a, b in zip(f.body["many"], body["many"]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert f.body["pat"].n == 4 and list(f.body["pat"].densities) == [0.1, 0.5]


def test_objects_never_travel():
    with pytest.raises(wire.ProtocolError, match="dtype object"):
        wire.pack_frame(wire.REQUEST, {"x": np.array([1, "a"], dtype=object)}, version=1)
    with pytest.raises(wire.ProtocolError, match="cannot travel"):
        wire.pack_frame(wire.REQUEST, {"x": {1, 2}}, version=1)
    raw = _frame_bytes(wire.RESPONSE, {"r": {"__dc__": "Popen", "fields": {}}})
    with pytest.raises(wire.ProtocolError, match="not one of norsim.backend.base"):
        _read(raw)


@pytest.mark.parametrize("damage, words", [
    ("magic", "bad magic"),
    ("crc", "CRC-32 mismatch"),
    ("truncate", "truncated frame"),
    ("payload_limit", "exceeds the limit"),
    ("header_limit", "header length"),
    ("type", "unknown message type"),
])
def test_corrupt_frames_are_one_line_protocol_errors(damage, words):
    raw = _frame_bytes()
    kw = {}
    if damage == "magic":
        raw[0:4] = b"HTTP"
    elif damage == "crc":
        raw[-2] ^= 0x01                       # a payload bit
    elif damage == "truncate":
        raw = raw[:-3]
    elif damage == "payload_limit":
        kw["max_payload"] = 4                 # the frame carries 6 bytes
    elif damage == "header_limit":
        raw[12:16] = (wire.MAX_HEADER_BYTES + 1).to_bytes(4, "little")
    elif damage == "type":
        raw[6:8] = (77).to_bytes(2, "little")
    with pytest.raises(wire.ProtocolError) as e:
        _read(raw, **kw)
    assert words in _one_line_error(e)


def test_version_negotiation_picks_the_highest_common_or_names_both():
    assert wire.choose_version([1, 2, 3], (1, 2)) == 2
    with pytest.raises(wire.ProtocolError) as e:
        wire.choose_version([3, 4], (1, 2))
    assert _one_line_error(e) == ("protocol version mismatch: client offers [3, 4], "
                                  "server speaks [1, 2]")


def test_state_chain_depends_on_every_argument():
    x = np.arange(6, dtype=np.uint8).reshape(2, 3)
    a = wire.chain_digest("", "calibrate", {"tile_id": "t", "x": x, "stream": [1]})
    assert a == wire.chain_digest("", "calibrate", {"tile_id": "t", "x": x.copy(), "stream": [1]})
    x2 = x.copy()
    x2[1, 2] += 1
    for other in (wire.chain_digest("", "calibrate", {"tile_id": "t", "x": x2, "stream": [1]}),
                  wire.chain_digest("", "calibrate", {"tile_id": "t", "x": x, "stream": [2]}),
                  wire.chain_digest(a, "calibrate", {"tile_id": "t", "x": x, "stream": [1]})):
        assert other != a


def test_remote_config_and_address_errors_name_the_field():
    from norsim.backend.remote import RemoteConfig, parse_address
    from norsim.errors import InputError

    assert parse_address("remote:localhost:4000") == ("localhost", 4000)
    assert parse_address("[::1]:5") == ("::1", 5)
    with pytest.raises(InputError, match="remote:HOST:PORT"):
        parse_address("localhost:99999")
    with pytest.raises(InputError, match="remote.call_timeout_s"):
        RemoteConfig(call_timeout_s=0).validate()
    with pytest.raises(InputError, match="remote.on_lost_state"):
        RemoteConfig(on_lost_state="hope").validate()


# ------------------------------------------------------------------ the server
def test_server_refuses_a_non_loopback_bind():
    r = subprocess.run([sys.executable, "-m", "norsim.backend.chip_server", "--host", "0.0.0.0",
                        "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "--allow-remote" in r.stderr


def test_wrong_protocol_version_is_one_line():
    from norsim.backend.remote import RemoteBackend

    with chip_server("--speak-version", "7") as (port, _):
        with pytest.raises(wire.ProtocolError) as e:
            RemoteBackend(f"127.0.0.1:{port}")
    msg = _one_line_error(e)
    assert "client offers [1], server speaks [7]" in msg and f"127.0.0.1:{port}" in msg


def test_unreachable_server_is_one_line():
    from norsim.backend.remote import RemoteBackend, RemoteUnavailable

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                    # nobody listens there now
    with pytest.raises(RemoteUnavailable) as e:
        RemoteBackend(f"127.0.0.1:{port}")
    assert "chip server running" in _one_line_error(e)


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def lenet():
    from norsim import zoo
    from norsim.config.presets import load_preset
    from norsim.data import load_dataset

    test = load_dataset("mnist", "test")
    calib = load_dataset("mnist", "calib")
    cfg = load_preset("nor40").with_overrides(SMALL)
    return zoo.load("lenet-mnist-4b"), cfg, test.x[:24], calib.x[:16]


def _run(model, cfg, x, xc, backend=None, batch_size=8):
    from norsim.mapping import engine, mapper

    chip = mapper.map_model(model, cfg, backend=backend)
    engine.calibrate(chip, xc)
    return chip, engine.run(chip, x, batch_size=batch_size)


@pytest.fixture(scope="module")
def in_process(lenet):
    model, cfg, x, xc = lenet
    return _run(model, cfg, x, xc)[1]


def _same(a, b):
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert a.layer_stats.keys() == b.layer_stats.keys()
    for k in a.layer_stats:
        assert a.layer_stats[k] == b.layer_stats[k]


def test_demo_model_end_to_end_bit_identical_to_in_process_sim(lenet, in_process):
    from norsim.backend.remote import RemoteBackend

    model, cfg, x, xc = lenet
    with chip_server() as (port, _):
        with RemoteBackend(f"127.0.0.1:{port}") as rb:
            chip, run = _run(model, cfg, x, xc, rb)
            info = rb.info()
            assert info.kind == "remote" and info.chip_id == "sim-seed0"
            assert info.protocol == f"norsim-wire/1 127.0.0.1:{port}"
            tid = next(iter(chip.tiles())).tile_id
            cal = rb.calibration(tid)
            assert isinstance(cal, Calibration) and cal.step_a > 0
            vth = rb.read_map(tid).values
            assert vth.shape[0] == cal.rows and vth.shape[1] > cal.pos.max()
            assert rb.reconnects == 0
    _same(run, in_process)


def test_dropped_connections_reconnect_reverify_and_stay_bit_identical(lenet, in_process):
    """The server drops every connection after 7 requests (having run the 7th): the client
    reconnects, checks its tiles' state chains, re-sends the request id and gets the kept
    answer (the call does not run twice, so the noise streams stay in step)."""
    from norsim.backend.remote import RemoteBackend, RemoteConfig

    model, cfg, x, xc = lenet
    with chip_server("--drop-after", "7") as (port, _):
        with RemoteBackend(f"127.0.0.1:{port}", RemoteConfig(backoff_s=0.01)) as rb:
            run = _run(model, cfg, x, xc, rb)[1]
            assert rb.reconnects >= 3
    _same(run, in_process)


def test_corrupt_frame_is_a_one_line_error(lenet):
    from norsim.backend.remote import RemoteBackend

    model, cfg, x, xc = lenet
    with chip_server("--corrupt-after", "3") as (port, _):
        with RemoteBackend(f"127.0.0.1:{port}") as rb:
            with pytest.raises(wire.ProtocolError) as e:
                _run(model, cfg, x, xc, rb)
    msg = _one_line_error(e)
    assert "CRC-32 mismatch" in msg and "program(tile " in msg and str(port) in msg


def test_slow_server_past_its_timeout_is_a_one_line_error():
    from norsim.backend.remote import RemoteBackend, RemoteConfig, RemoteTimeout

    with chip_server("--delay-s", "3") as (port, _):
        rb = RemoteBackend(f"127.0.0.1:{port}", RemoteConfig(call_timeout_s=0.3))
        t0 = time.monotonic()
        with pytest.raises(RemoteTimeout) as e:
            rb.mvm("fc1/r0c0", np.zeros((2, 4), dtype=np.int64), (1,))
        assert time.monotonic() - t0 < 2.5
        rb.close()
    msg = _one_line_error(e)
    assert "mvm(tile 'fc1/r0c0') got no answer within 0.3 s" in msg
    assert "remote.call_timeout_s" in msg


def test_server_errors_come_back_as_one_line():
    from norsim.backend.remote import RemoteBackend

    with chip_server() as (port, _):
        with RemoteBackend(f"127.0.0.1:{port}") as rb:
            with pytest.raises(wire.RemoteCallError) as e:
                rb.mvm("nope/r0c0", np.zeros((1, 3), dtype=np.int64), (1,))
    msg = _one_line_error(e)
    assert "InputError" in msg and "nope/r0c0" in msg


def _two_tiles(rb, cfg):
    """Program and calibrate two tiles (the calibration pass reads tile a between the two
    calibrations, on the shared stream, as the engine does)."""
    rng = np.random.default_rng(0)
    for t in ("a/r0c0", "b/r0c0"):
        rb.program(t, rng.integers(-7, 8, size=(40, 10)), cfg, (9, len(t)))
    xc = rng.integers(0, 16, (64, 40))
    rb.calibrate("a/r0c0", xc, (203,))
    rb.mvm("a/r0c0", xc, (203,), purpose="calibration")
    rb.calibrate("b/r0c0", xc, (203,))
    rb.release((203,))
    return {t: (rb.calibration(t), rb.read_map(t).values) for t in ("a/r0c0", "b/r0c0")}


def test_restarted_server_lost_state_fails_or_replays():
    """A server killed and restarted on its port has lost the tiles: the client notices on
    reconnect (boot id) and fails with one line, or, with on_lost_state = 'replay', re-sends
    its journal (programming, the calibration pass) and gets every tile back exactly."""
    from norsim.backend.remote import RemoteBackend, RemoteConfig, RemoteStateLost
    from norsim.config.presets import load_preset

    cfg = load_preset("nor40").with_overrides(SMALL)
    x = np.random.default_rng(1).integers(0, 16, (8, 40))
    for policy in ("fail", "replay"):
        with chip_server() as (port, proc):
            rb = RemoteBackend(f"127.0.0.1:{port}",
                               RemoteConfig(on_lost_state=policy, backoff_s=0.05, retries=40))
            before = _two_tiles(rb, cfg)
            proc.kill()
            proc.wait()
        with chip_server(port=port):
            if policy == "fail":
                with pytest.raises(RemoteStateLost) as e:
                    rb.mvm("b/r0c0", x, (202, 0, 0))
                msg = _one_line_error(e)
                assert "server restarted" in msg and "2 programmed tiles" in msg
                assert "rerun" in msg and f"127.0.0.1:{port}" in msg
            else:
                assert rb.mvm("b/r0c0", x, (202, 0, 0)).values.shape == (8, 10)
                assert rb.reconnects == 1
                for t, (cal, vth) in before.items():
                    cal2 = rb.calibration(t)
                    assert cal2.full_scale_a == cal.full_scale_a
                    np.testing.assert_array_equal(cal2.gain, cal.gain)
                    np.testing.assert_array_equal(rb.read_map(t).values, vth)
        rb.close()


def test_an_idle_client_yields_to_a_waiting_one():
    """One client at a time: a client that stays connected but idle is disconnected when
    another waits (--handover-s); it reconnects, re-verifies and finds its tile changed."""
    from norsim.backend.remote import RemoteBackend, RemoteConfig, RemoteStateLost
    from norsim.config.presets import load_preset

    cfg = load_preset("nor40").with_overrides(SMALL)
    w = np.random.default_rng(0).integers(-7, 8, size=(40, 10))
    with chip_server("--handover-s", "0.2") as (port, _):
        first = RemoteBackend(f"127.0.0.1:{port}", RemoteConfig(backoff_s=0.01))
        first.program("t/r0c0", w, cfg, (5,))
        t0 = time.monotonic()
        second = RemoteBackend(f"127.0.0.1:{port}", RemoteConfig(connect_timeout_s=3))
        assert time.monotonic() - t0 < 2.5
        second.program("t/r0c0", -w, cfg, (5,))
        second.close()
        with pytest.raises(RemoteStateLost) as e:
            first.mvm("t/r0c0", np.zeros((1, 40), dtype=np.int64), (1,))
        assert "tile 't/r0c0' was changed by another client" in _one_line_error(e)


def test_mvm_batch_is_one_request():
    """A whole batch of vectors travels in one frame: one round trip per tile and batch."""
    from norsim.backend.remote import RemoteBackend
    from norsim.config.presets import load_preset

    cfg = load_preset("nor40").with_overrides(SMALL)
    w = np.random.default_rng(0).integers(-7, 8, size=(40, 10))
    with chip_server() as (port, _):
        with RemoteBackend(f"127.0.0.1:{port}") as rb:
            rb.program("t/r0c0", w, cfg, (5,))
            rb.calibrate("t/r0c0", np.random.default_rng(1).integers(0, 16, (64, 40)), (6,))
            n0 = rb._rid
            res = rb.mvm("t/r0c0", np.random.default_rng(2).integers(0, 16, (500, 40)), (7,))
            assert rb._rid == n0 + 1
    assert isinstance(res, MvmResult) and res.values.shape == (500, 10)


# ------------------------------------------------------------------ a sweep on a killed chip
def test_sweep_point_on_a_killed_server_fails_then_resumes_with_nothing_lost(tmp_path):
    """Three chip instances (seeds) of a small model swept on the remote back-end; the
    server exits in the middle of the second: that point (and the third, which finds no
    server) is recorded as failed with one line; the first is kept. With the server back on
    its port, ``retry_failed`` runs exactly the failed points, and every accuracy equals the
    same sweep on the in-process ``sim``."""
    from norsim.backend.remote import RemoteBackend
    from norsim.config.sim import SimConfig
    from norsim.data import load_dataset
    from norsim.experiments import sweep
    from norsim.experiments.evaluate import evaluate_chip
    from norsim.mapping.quant_model import QuantModel

    from test_sweep_accuracy import _tiny_model

    _tiny_model(tmp_path / "tiny.npz")
    (tmp_path / "base.toml").write_text("[mapping]\ncalibration_images = 16\n")

    def spec(name, backend):
        p = tmp_path / f"{name}.toml"
        p.write_text('[sweep]\nevaluator = "accuracy"\nmodel = "tiny.npz"\ndata = "mnist"\n'
                     '[base]\nconfig = "base.toml"\n[seeds]\nroot = 3\ncount = 3\n'
                     f'[options]\nimages = 32\nreference = false\nbackend = "{backend}"\n')
        return p

    # requests one chip instance sends (the server exits half-way through the second)
    test, calib = load_dataset("mnist", "test"), load_dataset("mnist", "calib")
    model = QuantModel.load(tmp_path / "tiny.npz")
    cfg = SimConfig.from_toml((tmp_path / "base.toml").read_text())
    with chip_server() as (port, _):
        rb = RemoteBackend(f"127.0.0.1:{port}")
        evaluate_chip(model, cfg, test.x[:32], test.y[:32], calib.x[:16], backend=rb)
        per_point = rb._rid
        rb.close()
    assert per_point > 4

    with chip_server("--exit-after", str(per_point + per_point // 2)) as (port, proc):
        s = spec("remote", f"remote:127.0.0.1:{port}")
        df = sweep(s, tmp_path / "remote.sqlite", workers=1, progress=False)
        assert proc.wait(10) == 3
    assert sorted(df.status) == ["error", "error", "ok"]
    for err in df[df.status == "error"].error:
        line = err.strip().splitlines()[-1]
        assert f"remote chip 127.0.0.1:{port}" in line, err
    kept = df[df.status == "ok"].iloc[0]

    with chip_server(port=port):
        df2 = sweep(s, tmp_path / "remote.sqlite", workers=1, progress=False, retry_failed=True)
    assert (df2.status == "ok").all() and len(df2) == 3
    again = df2[df2.seed == kept.seed].iloc[0]
    assert again.accuracy == kept.accuracy and again.finished_at == kept.finished_at

    sim = sweep(spec("sim", "sim"), tmp_path / "sim.sqlite", workers=1, progress=False)
    a = df2.sort_values("seed").accuracy.to_numpy()
    b = sim.sort_values("seed").accuracy.to_numpy()
    np.testing.assert_array_equal(a, b)
