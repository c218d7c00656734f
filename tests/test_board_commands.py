"""Commissioning a MicroPython board over USB: sensors, manifest, status and logs come from the
board on --port (the virtual board: the real MicroPython port behind a pty), not the laptop."""
import json

import pytest
from cli_helpers import cli, json_lines, run_cli
from provision_support import PASSPHRASE, write_board

from provisioning.field import board_tools
from provisioning.field.virtual_board import VirtualBoard

BOARD = "boards/virtual.json"


@pytest.fixture
def site(tmp_path, monkeypatch):
    for k, v in {"CIVICMOTE_CA_PASSPHRASE": PASSPHRASE, "CIVICMOTE_REGISTRY": str(tmp_path / "registry.db"),
                 "CIVICMOTE_WIFI_PASSWORD": "pw-not-printed"}.items():
        monkeypatch.setenv(k, v)
    assert run_cli("ca", "init", "--dir", tmp_path / "ca").returncode == 0
    return tmp_path


def test_commissioning_a_virtual_board_over_usb(site):
    with VirtualBoard(site / "flash") as board:
        # Before provisioning: the board holds no agent, and says so naming the port.
        p = run_cli("status", "--port", board.port)
        assert p.returncode == 2 and board.port in p.stderr and "provision" in p.stderr
        # Provisioned without Wi-Fi settings: it works, and a warning says the board cannot reach a broker.
        p = run_cli("provision", "--board", BOARD, "--port", board.port, "--district", "north", "--ca", site / "ca",
                    "--broker", "mqtts://broker.city.example:8883", "--json", timeout=300)
        assert p.returncode == 0, p.stderr
        rec = json.loads(p.stdout)
        assert rec["wifi"] is False and "no Wi-Fi settings" in p.stderr and "--wifi-ssid" in p.stderr

        # The board reads its own (emulated) sensors: frames from the board, no "No module named 'machine'".
        p = run_cli("sensors", "read", "--port", board.port, "--seconds", "6", "--json", timeout=120)
        assert p.returncode == 0, p.stderr
        frames = json_lines(p.stdout)
        assert len(frames) == 6 and frames[-1]["port"] == board.port
        assert {r["sensor"] for r in frames[-1]["sensors"]} == set(json.load(open(BOARD))["sensors"])
        assert "machine" not in p.stdout + p.stderr

        # The manifest of what the board holds, naming its device.
        p = run_cli("manifest", "show", "--port", board.port, "--json", timeout=60)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["dev"] == rec["device_id"]  # the manifest itself, as signed (wire names)

        # Status: identity, firmware, clock, Wi-Fi, outbox, budget; not ready (no Wi-Fi settings): exit 1.
        ledger = board.flash_dir / "civicmote" / "privacy.ledger"
        before = ledger.read_bytes()
        p = run_cli("status", "--port", board.port, "--json", timeout=120)
        assert p.returncode == 1, p.stderr
        assert ledger.read_bytes() == before  # the budget is read, never rewritten by a check
        st = json.loads(p.stdout)
        assert st["device_id"] == rec["device_id"] and st["district"] == "north"
        assert st["firmware"]["name"] == "micropython" and st["outbox_depth"] == 0
        assert abs(st["clock_offset_s"]) < 60 and st["wifi"]["configured"] is False
        assert st["ok"] is False and any("Wi-Fi" in x for x in st["problems"])
        # one budget per person per day across all personal metrics (issue 11), untouched today
        assert list(st["budget_today"]) == ["person"], st["budget_today"]
        assert all(v.get("left") == v["daily_epsilon"] for v in st["budget_today"].values()), st["budget_today"]
        assert st["stored_up_to"] is None and "receipt_error" not in st, st  # no receipt from the city yet
        # The commissioning proof: the city's last receipt, as the agent keeps it on flash.
        _receipt_on_flash(board.flash_dir / "civicmote" / "receipt", rec["device_id"], seq=7, t_ms=1796000000000)
        st = json.loads(run_cli("status", "--port", board.port, "--json", timeout=120).stdout)
        assert st["stored_up_to"] == {"seq": 7, "at": 1796000000,
                                      "text": "the city has stored up to seq 7 at 2026-11-30T00:53:20Z"}, st

        # Logs: the crash log the boot code writes, read back from the board.
        # Logs: the crash log and the agent's messages, as the board's boot code writes them.
        from provisioning.field.serial_board import BoardSession

        with BoardSession.open(board.port) as s:
            s.exec("from agent.runtime import board_main\n"
                   "try:\n raise OSError(5)\nexcept OSError as e:\n board_main.log_crash(e)\n"
                   "board_main.note('wifi DOWN (summaries wait in the outbox)')")
        p = run_cli("logs", "--port", board.port, "--json", timeout=60)
        assert p.returncode == 0, p.stderr
        logs = json.loads(p.stdout)
        assert "OSError: [Errno 5] EIO" in logs["crash_log"] and "civicmote: wifi DOWN" in logs["messages"]
        p = run_cli("logs", "--port", board.port, timeout=60)
        assert "== crash log (/crash.log)" in p.stdout and "wifi DOWN" in p.stdout


def test_a_cpython_profile_is_refused_on_a_micropython_port(site):
    with VirtualBoard(site / "flash") as board:
        p = run_cli("provision", "--board", write_board(site), "--port", board.port, "--district", "north",
                    "--ca", site / "ca")
        assert p.returncode == 2 and "runs cpython" in p.stderr and "--target" in p.stderr
        assert not (board.flash_dir / "civicmote").exists()


class _Port:
    def __init__(self, device, vid, description=""):
        self.device, self.vid, self.description = device, vid, description


def test_port_discovery_picks_the_one_usb_board(monkeypatch):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [_Port("/dev/ttyS0", None), _Port("/dev/ttyACM0", 0x2E8A)])
    assert board_tools.find_port(None) == "/dev/ttyACM0"
    assert board_tools.find_port("/dev/ttyUSB3") == "/dev/ttyUSB3"
    monkeypatch.setattr(list_ports, "comports", lambda: [_Port("/dev/ttyS0", None)])
    with pytest.raises(Exception) as e:
        board_tools.find_port(None)
    assert e.value.exit_code == 3 and "--port" in str(e.value)
    monkeypatch.setattr(list_ports, "comports", lambda: [_Port("/dev/ttyACM0", 1), _Port("/dev/ttyUSB0", 2)])
    with pytest.raises(Exception) as e:
        board_tools.find_port(None)
    assert e.value.exit_code == 2 and "/dev/ttyACM0" in str(e.value) and "/dev/ttyUSB0" in str(e.value)


def test_status_without_a_board_attached_exits_3(capsys, monkeypatch):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    code, out, err = cli(capsys, "status", "--json")
    assert code == 3 and "no board found" in err


def _receipt_on_flash(path, dev, seq, t_ms):
    """Write a receipt where the agent keeps its last one (agent/runtime/receipts.py)."""
    import os

    from agent import crypto
    from agent.core import receipt
    from agent.store.slots import SlotFile

    ca, col = crypto.generate_signing_key(os.urandom), crypto.generate_signing_key(os.urandom)
    cert = receipt.make_cert(ca, "civicmote-collector", col.public_key().to_sec1(), 2000000000)
    SlotFile(str(path), 1024).write(receipt.make(col, cert, dev, 1, seq, t_ms, "civicmote-collector"))
