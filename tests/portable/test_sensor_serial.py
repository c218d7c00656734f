"""SDS011 and PMS5003: frame parsing (pure), commands, drivers against frame-stream emulators."""
from support import load_vectors, raises, unhex

from agent.emulators.serial_chips import Pms5003Chip, Sds011Chip
from agent.emulators.street import Street
from agent.hal.emulated import EmulatedUART
from agent.sensors import pms5003, sds011
from agent.sensors.fault import SensorFault

S = load_vectors("sensor_sds011.json")
P = load_vectors("sensor_pms5003.json")
T0 = 1764230400000  # 08:00 UTC: rush hour


def test_sds011_datasheet_frame():
    ex = S["data_example"]
    kind, value, nxt = sds011.decode(unhex(ex["frame"]))
    assert kind == "data" and nxt == 10
    assert value == (ex["pm2_5_tenths"], ex["pm10_tenths"])


def test_sds011_commands_match_the_protocol_document():
    assert sds011.sleep_command() == unhex(S["sleep"])
    assert sds011.work_command() == unhex(S["work"])
    assert sds011.command(sds011.CMD_QUERY) == unhex(S["query"])
    kind, value, _ = sds011.decode(unhex(S["reply_sleep"]))
    assert kind == "reply" and value == b"\x06\x01\x00\x00"


def test_sds011_negative_frames():
    for case in S["bad"]:
        kind, value, _ = sds011.decode(unhex(case["frame"]))
        assert kind == case["kind"], case["why"]
        assert value is None


def test_sds011_resyncs_after_garbage_and_partial_frames():
    good = unhex(S["data_example"]["frame"])
    stream = b"\x00\xaa\x13\xaa\xc0\x01" + good[:4]
    kind, _, i = sds011.decode(stream)
    assert kind == "more"
    stream = stream[i:] + good[4:] + b"\xab\xaa" + good
    found = []
    i = 0
    while True:
        kind, value, i = sds011.decode(stream, i)
        if kind == "more":
            break
        found.append(kind)
    assert found.count("data") >= 1 and found[-1] == "data"


def _sds(now=T0):
    street = Street(3)
    street.set_now(now)
    chip = Sds011Chip(street)
    return street, chip, sds011.SDS011(EmulatedUART(chip))


def test_sds011_driver_reads_frames():
    street, chip, drv = _sds()
    drv.start(T0)
    assert drv.read(T0) is None  # nothing sent yet in this second
    street.set_now(T0 + 2000)
    r = drv.read(T0 + 2000)
    assert abs(r["pm2_5_ugm3"] - street.pm2_5(T0 + 2000)) <= 0.06
    assert r["pm2_5_ugm3"] > 20  # rush-hour peak
    assert abs(r["pm10_ugm3"] - street.pm10(T0 + 2000)) <= 0.06


def test_sds011_corrupt_and_garbage_frames():
    street, chip, drv = _sds()
    drv.start(T0)
    chip.corrupt = 1
    street.set_now(T0 + 1000)
    e = raises(SensorFault, drv.read, T0 + 1000)
    assert e.kind == "checksum"
    assert drv.take_soft_faults() == {"checksum": 1}
    chip.garbage = b"\xaa\xaa\x00\xff\xc0\xab"
    street.set_now(T0 + 2000)
    assert drv.read(T0 + 2000)["pm10_ugm3"] > 0


def test_sds011_silence_times_out():
    street, chip, drv = _sds()
    drv.start(T0)
    chip.silent = True
    street.set_now(T0 + 3000)
    assert drv.read(T0 + 3000) is None
    street.set_now(T0 + 6000)
    assert raises(SensorFault, drv.read, T0 + 6000).kind == "timeout"


def test_sds011_out_of_range():
    street, chip, drv = _sds()
    drv.start(T0)
    chip.override["pm2_5_ugm3"] = 6553.5
    street.set_now(T0 + 1000)
    assert raises(SensorFault, drv.read, T0 + 1000).kind == "range"


def test_sds011_duty_cycle_sleeps_and_wakes():
    street = Street(3)
    street.set_now(T0)
    chip = Sds011Chip(street)
    drv = sds011.SDS011(EmulatedUART(chip), work_ms=30000, period_ms=120000, warmup_ms=20000)
    got = []
    for s in range(0, 200):
        t = T0 + s * 1000
        street.set_now(t)
        if s == 0:
            drv.start(t)
        if drv.read(t) is not None:
            got.append(s)
    # Awake 0..30 s (readings after the 20 s warm-up), asleep until 120 s, awake 120..150 s.
    assert got == list(range(20, 31)) + list(range(140, 151))
    assert not chip.awake


def test_pms5003_frame_and_commands():
    kind, value, nxt = pms5003.decode(unhex(P["frame"]))
    assert kind == "data" and value == (P["pm1_0"], P["pm2_5"], P["pm10"]) and nxt == 32
    assert pms5003.decode(unhex(P["bad_checksum"]))[0] == "checksum"
    assert pms5003.decode(unhex(P["bad_length"]))[0] == "more"
    assert pms5003.sleep_command() == unhex(P["sleep"])
    assert pms5003.wake_command() == unhex(P["wake"])


def test_pms5003_driver_against_emulator_with_faults():
    street = Street(5)
    street.set_now(T0)
    chip = Pms5003Chip(street)
    uart = EmulatedUART(chip)
    drv = pms5003.PMS5003(uart)
    drv.start(T0)
    street.set_now(T0 + 1000)
    r = drv.read(T0 + 1000)
    assert r["pm2_5_ugm3"] == int(street.pm2_5(T0 + 1000) + 0.5)
    chip.corrupt = 1
    street.set_now(T0 + 2000)
    assert raises(SensorFault, drv.read, T0 + 2000).kind == "checksum"
    uart.unplug()
    street.set_now(T0 + 8000)
    assert raises(SensorFault, drv.read, T0 + 8000).kind == "timeout"
