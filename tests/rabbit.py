"""A real RabbitMQ cluster for tests and benches, from a `broker-config --kind rabbitmq` folder.

    nodes = rabbit_nodes(3)                          # names and free ports for broker-config
    with RabbitCluster(broker_dir, nodes) as rc:     # every node started, the cluster formed
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
        self.restarted_vhosts = []  # nodes whose vhost had to be restarted after the boot race

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
            self.ensure_vhost(i)
        return self

    def ensure_vhost(self, i, timeout=60):
        """Until the vhost runs on node i, restarting it there if it is down.

        Nodes booted together race: the vhost is created (from definitions.json) by whichever
        node imports first, and started only on the nodes that already run; a node whose boot
        passed its recovery step just before never starts it, and refuses every login with
        "vhost '/' is down" (MQTT: the connection is closed before CONNACK; seen on a loaded
        2-core machine, the whole third of the fleet on that node failed). An operator's
        check after a cluster start: `rabbitmq-diagnostics check_virtual_hosts` on each node,
        `rabbitmqctl restart_vhost` where it fails. -> True if it had to be restarted."""
        end = time.monotonic() + timeout
        restarted = False
        while self.ctl(i, "check_virtual_hosts", tool="rabbitmq-diagnostics", timeout=60).returncode != 0:
            if time.monotonic() > end:
                raise RuntimeError("vhost / does not run on %s: %s" % (self.nodes[i]["name"], self.log(i)))
            self.ctl(i, "restart_vhost", "--vhost", "/")
            restarted = True
            self.restarted_vhosts.append(self.nodes[i]["name"])
            time.sleep(0.5)
        return restarted

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
