"""A real RabbitMQ cluster for tests and benches, from a `broker-config --kind rabbitmq` folder.

    nodes = rabbit_nodes(3)                          # names and free ports for broker-config
    with RabbitCluster(broker_dir, nodes) as rc:     # every node started, the cluster formed, every
                                                     # node ready for logins (ensure_ready)
        rc.kill(2)                                   # SIGKILL one node

Each node runs from /usr/lib/rabbitmq/bin with its own data and log folders, all under one HOME
(one Erlang cookie) and a private epmd port, so it touches nothing else on the machine.
`RabbitCluster.available()` says why not when RabbitMQ is missing.
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BIN = "/usr/lib/rabbitmq/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rabbit_nodes(n):
    tag = secrets.token_hex(3)
    return [{"name": "cm%s%d@localhost" % (tag, i), "mqtts": free_port(), "amqps": free_port(), "dist": free_port()}
            for i in range(n)]


class RabbitCluster:
    def __init__(self, broker_dir, nodes, home=None):
        """home: where the nodes' data and logs go (kept for reading after a failure); default a
        temporary folder removed by stop()."""
        self.dir = Path(broker_dir).absolute()
        self.nodes = nodes
        self.keep = home is not None
        self.home = Path(home).absolute() if home is not None else Path(tempfile.mkdtemp(prefix="civicmote-rmq-"))
        self.epmd = free_port()
        self.procs = {}
        self.repairs = []  # "node: what" repaired after the boot (see ensure_ready)

    @staticmethod
    def available():
        if not os.path.exists(os.path.join(BIN, "rabbitmq-server")):
            return "RabbitMQ is not installed (tools/install-system-deps rabbitmq)"
        return None

    def env(self, node):
        e = dict(os.environ)
        base = self.home / node["name"]
        e.update({"HOME": str(self.home), "ERL_EPMD_PORT": str(self.epmd), "RABBITMQ_NODENAME": node["name"],
                  "RABBITMQ_CONFIG_FILE": str(self.dir / node["name"] / "rabbitmq.conf"),
                  "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                  "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
                  "RABBITMQ_PID_FILE": str(base / "pid"), "RABBITMQ_DIST_PORT": str(node["dist"]),
                  "RABBITMQ_LOGS": str(base / "log" / "rabbit.log"), "RABBITMQ_USE_LONGNAME": "false",
                  "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1 +A 4"})
        return e

    def start_node(self, i):
        node = self.nodes[i]
        (self.home / node["name"] / "log").mkdir(parents=True, exist_ok=True)
        self.procs[i] = subprocess.Popen([os.path.join(BIN, "rabbitmq-server")], env=self.env(node),
                                         stdout=open(self.home / node["name"] / "stdout", "ab"),
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def ctl(self, i, *args, timeout=60, tool="rabbitmqctl"):
        return subprocess.run([os.path.join(BIN, tool), "-n", self.nodes[i]["name"]] + list(args),
                              env=self.env(self.nodes[i]), capture_output=True, text=True, timeout=timeout)

    def wait_node(self, i, timeout=120):
        """Until the node has booted (the CLI can only wait once the VM is registered with epmd)."""
        end = time.monotonic() + timeout
        while True:
            r = self.ctl(i, "await_startup", "--timeout", "10", timeout=30)
            if r.returncode == 0:
                return
            if self.procs[i].poll() is not None or time.monotonic() > end:
                out = (self.home / self.nodes[i]["name"] / "stdout").read_text(errors="replace")[-1500:]
                raise RuntimeError("node %s did not start: %s %s" % (self.nodes[i]["name"], out, self.log(i)))
            time.sleep(0.5)

    def running_nodes(self, i=0):
        r = self.ctl(i, "eval", "length(rabbit_mnesia:cluster_nodes(running)).")
        return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else 0

    def start(self):
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / ".erlang.cookie").write_text(secrets.token_hex(16))
        os.chmod(self.home / ".erlang.cookie", 0o400)
        for i in range(len(self.nodes)):  # all at once: classic peer discovery lets them find each other
            self.start_node(i)
        for i in range(len(self.nodes)):
            self.wait_node(i)
        end = time.monotonic() + 60
        while self.running_nodes() < len(self.nodes):
            if time.monotonic() > end:
                raise RuntimeError("the cluster did not form: %s" % self.ctl(0, "cluster_status").stdout)
            time.sleep(0.5)
        for i in range(len(self.nodes)):
            self.ensure_ready(i)
        return self

    # One CLI call (each costs seconds on a loaded machine): the vhost runs on this node, and this
    # node's member of the MQTT plugin's client-id Raft cluster (mqtt_node) knows a leader; each
    # repaired if not. -> "ready", or what was repaired.
    READY = ('V = case rabbit_vhost_sup_sup:is_vhost_alive(<<"/">>) of true -> ok; '
             'false -> {vhost, rabbit_vhost_sup_sup:start_vhost(<<"/">>)} end, '
             'M = case ra_leaderboard:lookup_leader(mqtt_node) of undefined -> '
             '{mqtt_node, ra:add_member([{mqtt_node, N} || N <- nodes()], mqtt_node:node_id())}; _ -> ok end, '
             'case {V, M} of {ok, ok} -> ready; _ -> {V, M} end.')

    def ensure_ready(self, i, timeout=90):
        """Until node i can take MQTT and AMQP logins, repairing what nodes booted together can
        miss (RabbitMQ 3.10, both seen here on a loaded 2-core machine; either leaves a node that
        refuses every device, so a third of the fleet fails):
        - vhost: it is created (from definitions.json) by whichever node imports first and started
          only on the nodes already running; a node whose boot passed its recovery step just
          before never starts it and refuses logins with "vhost '/' is down". Repair: start it
          (`rabbitmqctl restart_vhost`).
        - mqtt_node: a node asks to join the plugin's client-id tracking cluster once; a leader
          elected milliseconds before refuses (Ra's cluster_change_not_permitted, logged as
          "$ra_join ... NOT appended") and the plugin does not ask again, so the node never learns
          a leader and refuses every MQTT CONNECT ("client ID registration timed out"). Repair:
          ask again (ra:add_member, what the plugin's join does).
        -> the repairs made, e.g. ["vhost"]; also appended to self.repairs as "node: what"."""
        end = time.monotonic() + timeout
        done = []
        while True:
            r = self.ctl(i, "eval", self.READY)
            out = r.stdout.strip()
            if r.returncode == 0 and out == "ready":
                return done
            if time.monotonic() > end:
                raise RuntimeError("%s is not ready: %s %s" % (self.nodes[i]["name"], out, self.log(i)))
            for what in ("vhost", "mqtt_node"):
                if "{%s," % what in out and what not in done:
                    done.append(what)
                    self.repairs.append("%s: %s" % (self.nodes[i]["name"], what))
            time.sleep(0.5)

    def log(self, i):
        p = self.home / self.nodes[i]["name"] / "log" / "rabbit.log"
        return p.read_text(errors="replace")[-2000:] if p.exists() else ""

    def kill(self, i):
        """SIGKILL the node's whole process group (the Erlang VM and its helpers)."""
        p = self.procs.get(i)
        if p and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def stop(self):
        for i, p in self.procs.items():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for i, p in self.procs.items():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        subprocess.run(["epmd", "-port", str(self.epmd), "-kill"], capture_output=True,
                       env=dict(os.environ, ERL_EPMD_PORT=str(self.epmd)))
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
