"""Commissioning a MicroPython board over USB: what the board itself says (CPython only).

The technician's checks before leaving the pole, each run ON THE BOARD through the raw REPL
with the agent it was provisioned with (`civicmote sensors read|manifest show|status|logs --port`):
    read_sensors(session, seconds, on_frame)  the board's own sensors, once a second
    board_profile(session)                     the profile (and device id) the board holds
    status(session, host_now)                  identity, firmware, clock, Wi-Fi, broker, outbox, budget
    logs(session)                              the crash log and the agent's recent messages
Entering the raw REPL stops the running agent; `restart(session)` soft-resets the board so
main.py starts it again. `find_port()` picks the one USB serial board attached, like
`mpremote devs` / mpremote's auto-connect.
"""
import json

from provisioning.errors import EnvironmentProblem, UsageError
from provisioning.field.serial_target import DEVICE_DIR

from agent.runtime.board_main import CRASH_LOG, MESSAGES_LOG  # noqa: E402 (the board's own paths)

_SENSORS = """
import json, time
from agent.board import load_profile, open_sensors
from agent.runtime.board_main import real_clock
b = load_profile(%(dir)r + '/board.json')
ids = {}
def sink(m, i):
    ids[m] = ids.get(m, 0) + 1
s = open_sensors(b, real_clock()[1], identifier_sink=sink)
try:
    for k in range(%(n)d):
        t, ms = real_clock()
        print(json.dumps({'t': t, 'readings': s.poll(ms), 'health': s.health(), 'ids': ids}))
        if k + 1 < %(n)d:
            time.sleep(1)
finally:
    s.close()
"""

_STATUS = """
import json, os, sys, time
D = %(dir)r
def rj(p):
    try:
        with open(p) as f:
            return json.load(f)
    except Exception:
        return None
def has(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
r = {}
dev = rj(D + '/device.json') or {}
cfg = rj(D + '/config.json') or {}
wifi = rj(D + '/wifi.json') or {}
i = sys.implementation
r['device_id'] = dev.get('device_id')
r['district'] = dev.get('district')
r['board'] = dev.get('board')
r['broker'] = cfg.get('broker')
r['firmware'] = {'name': i.name, 'version': '.'.join(str(v) for v in i.version[:3]), 'platform': sys.platform,
                 'machine': getattr(i, '_machine', '')}
try:
    from agent.runtime.board_main import real_clock
    r['clock_s'] = real_clock()[0]
except Exception as e:
    r['clock_s'] = None
w = {'configured': bool(wifi), 'ssid': wifi.get('ssid'), 'connected': None, 'ip': None}
try:
    import network
    n = network.WLAN(network.STA_IF)
    w['connected'] = n.isconnected()
    if w['connected']:
        w['ip'] = n.ifconfig()[0]
except ImportError:
    w['note'] = 'this firmware has no network module'
r['wifi'] = w
try:
    from agent.runtime import device as dv
    from agent.store.outbox import Outbox
    r['outbox_depth'] = Outbox(D + '/' + dv.OUTBOX, dv.OUTBOX_BYTES, dv.OUTBOX_COUNT).depth
except Exception as e:
    r['outbox_depth'] = None
    r['outbox_error'] = str(e)
try:
    from agent.runtime.receipts import last_proof
    p = last_proof(D)
    r['stored_up_to'] = None if p is None else {'seq': p['seq'], 'at': p['at'], 'text': p['text']}
except Exception as e:
    r['stored_up_to'] = None
    r['receipt_error'] = str(e)
budget = {}
def q(x):
    return '%%d' %% x[0] if x[1] == 1 else '%%d/%%d' %% x
try:
    # Read-only: opening the ledger could rewrite it (a failed-closed day is written back), so the
    # record is only read and verified here with the device's own ledger key.
    from agent.board import load_profile
    from agent.privacy.ledger import PrivacyLedger, utc_day
    from agent.runtime import device as dv
    from agent.store import identity
    from agent.core import rational
    b = load_profile(D + '/board.json')
    L = PrivacyLedger(D + '/' + dv.LEDGER, 0, {}, True, 0, dv.device_ledger_key(identity.load_key(D)))
    rec = L._read()
    today = utc_day(r['clock_s'])
    # One budget per person per day across all personal metrics (docs/privacy.md), charged
    # under the ledger key "person".
    if b.daily_epsilon is not None:
        cap = rational.parse(b.daily_epsilon) if isinstance(b.daily_epsilon, str) else tuple(b.daily_epsilon)
        total = q(cap)
        if rec is None:
            budget['person'] = {'daily_epsilon': total, 'left': '0',
                                'note': 'ledger missing or not authentic: closed for today'}
        elif rec['closed'] or rec['day'] > today:
            budget['person'] = {'daily_epsilon': total, 'left': '0', 'note': 'ledger closed for today'}
        else:
            spent = (0, 1)
            if rec['day'] == today and 'person' in rec['spent']:
                spent = rational.parse(rec['spent']['person'])
            budget['person'] = {'daily_epsilon': total, 'spent': q(spent), 'left': q(rational.sub(cap, spent))}
except Exception as e:
    budget = {'error': str(e)}
r['budget_today'] = budget
broker = {'checked': False}
if cfg.get('broker') and w['connected'] is not False and r['device_id']:
    try:
        from agent.runtime import board_main
        from agent.net.mqtt_client import MQTTClient
        t = board_main.mqtt_transport(D, cfg, r['device_id'] + '-check')
        t = MQTTClient(t.host, t.port, r['device_id'] + '-check', t.open_stream, timeout=5.0, clean_session=True)
        t0 = time.ticks_ms() if hasattr(time, 'ticks_ms') else int(time.time() * 1000)
        ok = False
        for k in range(40):
            now = k * 0.25
            if t.connect(now):
                ok = True
                break
            t.poll(now, 0.25)
        t.close()
        broker = {'checked': True, 'connected': ok, 'last_error': t.last_error}
    except Exception as e:
        broker = {'checked': True, 'connected': False, 'last_error': str(e)}
r['broker_connection'] = broker
r['crash_log'] = has(%(crash)r)
print(json.dumps(r))
"""

_LOGS = """
import json
def rd(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError:
        return None
print(json.dumps({'crash_log': rd(%(crash)r), 'messages': rd(%(msgs)r)}))
"""


def find_port(given=None):
    """--port, or the one USB serial device attached (as mpremote's auto-connect picks), else an error."""
    if given:
        return given
    from serial.tools import list_ports

    ports = sorted((p for p in list_ports.comports() if p.vid is not None), key=lambda p: p.device)
    if len(ports) == 1:
        return ports[0].device
    if not ports:
        raise EnvironmentProblem("no board found on USB (mpremote devs lists none with a USB id); plug one in, "
                                 "or name its port with --port PORT")
    raise UsageError("%d boards attached (%s); name one with --port PORT"
                     % (len(ports), ", ".join("%s %s" % (p.device, p.description or "") for p in ports)))


def open_board(port):
    from provisioning.field.serial_board import BoardSession

    return BoardSession.open(port)


def _json_line(port, out):
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (ValueError, IndexError):
        raise EnvironmentProblem("%s: the board's answer is not JSON; is it provisioned by civicmote "
                                 "(civicmote provision --port %s)?" % (port, port))


def _require_provisioned(session):
    if session.read_file(DEVICE_DIR + "/board.json") is None:
        raise UsageError("%s: the board holds no civicmote agent (no %s/board.json); provision it first: "
                         "civicmote provision --port %s ..." % (session.port, DEVICE_DIR, session.port))


def read_sensors(session, seconds, on_frame):
    """Poll the board's sensors once a second for `seconds`; on_frame(frame) as each arrives."""
    _require_provisioned(session)
    buf = bytearray()

    def consume(data):
        buf.extend(data)
        while b"\n" in buf:
            i = buf.index(b"\n")
            line = bytes(buf[:i]).strip()
            del buf[:i + 1]
            if line.startswith(b"{"):
                on_frame(json.loads(line))

    from mpremote.transport import TransportError

    try:
        _, err = session.transport.exec_raw(_SENSORS % {"dir": DEVICE_DIR, "n": seconds}, timeout=10,
                                            data_consumer=consume)
    except (TransportError, OSError) as e:
        raise EnvironmentProblem("%s: the board stopped answering (%s); check the cable and re-run"
                                 % (session.port, str(e).strip() or type(e).__name__))
    if err:
        last = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        raise EnvironmentProblem("%s: reading the sensors on the board failed: %s" % (
            session.port, last[-1] if last else "error"))


def board_profile(session):
    """(profile JSON bytes, device_id or None) that the board holds."""
    _require_provisioned(session)
    raw = session.read_file(DEVICE_DIR + "/board.json")
    dev = session.read_file(DEVICE_DIR + "/device.json")
    try:
        dev = json.loads(dev).get("device_id") if dev else None
    except ValueError:
        dev = None
    return raw, dev


def status(session, host_now):
    _require_provisioned(session)
    info = session.info()
    r = _json_line(session.port, session.exec(_STATUS % {"dir": DEVICE_DIR, "crash": CRASH_LOG}, timeout=30))
    r["port"] = session.port
    r["uid"] = info.get("uid")
    r["clock_offset_s"] = (r["clock_s"] - int(host_now)) if r.get("clock_s") is not None else None
    return r


def logs(session):
    r = _json_line(session.port, session.exec(_LOGS % {"crash": CRASH_LOG, "msgs": MESSAGES_LOG}))
    r["port"] = session.port
    return r


def restart(session):
    """Leave the raw REPL and soft-reset (Ctrl-D at the friendly REPL): boot.py and main.py run, so the
    agent the raw REPL interrupted starts again. Best effort: the board may be gone already."""
    try:
        session.transport.exit_raw_repl()
        session.transport.serial.write(b"\x04")
    except Exception:  # noqa: BLE001 - nothing to report: the check itself is done
        pass
