"""systemd units for the city: the broker, the collector, and the refresh that keeps them current (CPython only).

    units(settings) -> {file name: text}

civicmote-broker.service            Mosquitto from OUT/mosquitto.conf; `systemctl reload` sends SIGHUP
civicmote-collector.service         `civicmote collect` with OUT's identity, OUT/registry.json and a store
                                    under /var/lib/civicmote; restarted whenever it stops
civicmote-rollout.service           `civicmote rollout serve` with OUT's rollout identity and OUT/registry.json,
                                    its state in /var/lib/civicmote/rollout.db (docs/updates.md)
civicmote-broker-refresh.service    `civicmote broker-config ... --reload`: re-signs the CRL (CRL_DAYS
                                    ahead), rewrites the ACL and registry.json from the registry, reloads
                                    the broker; the collector re-reads registry.json by itself
civicmote-broker-refresh.timer      runs the refresh daily (and 5 minutes after boot), catching up missed runs
civicmote-broker-refresh.path       runs the refresh when the registry database changes
civicmote-forward-sensorthings.service  `civicmote forward sensorthings URL --follow` (forward_unit(); written
                                    by that command's --systemd-unit DIR)

The refresh signs with the CA, so it needs the CA passphrase: systemd hands it the file
/etc/civicmote/ca-passphrase (mode 0600, root) as a credential, read through
CIVICMOTE_CA_PASSPHRASE_FILE; the passphrase is never in a unit or the environment of others.
"""
import shlex
import sys

PASSPHRASE_FILE = "/etc/civicmote/ca-passphrase"
STATE_DIR = "/var/lib/civicmote"


def _cmd(words):
    return " ".join(shlex.quote(str(w)) for w in words)


def units(out_dir, ca_dir, registry, port, bind=None, hosts=(), user=None, collector_user=None, python=None):
    """The unit files (name -> text) for a broker folder written by broker-config with these settings."""
    py = python or sys.executable
    cli = [py, "-m", "provisioning.cli"]
    refresh = cli + ["broker-config", "--ca", ca_dir, "--registry", registry, "--out", out_dir, "--port", port]
    if bind:
        refresh += ["--bind", bind]
    for h in hosts:
        refresh += ["--host", h]
    if user:
        refresh += ["--user", user]
    if collector_user:
        refresh += ["--collector-user", collector_user]
    refresh += ["--reload", "--json"]
    host = bind if bind and bind not in ("0.0.0.0", "::") else "localhost"
    collect = cli + ["collect", "--broker", "mqtts://%s:%s" % (host, port), "--registry", "%s/registry.json" % out_dir,
                     "--store", "%s/collector.db" % STATE_DIR, "--tls-ca", "%s/ca.crt" % out_dir,
                     "--tls-cert", "%s/collector.crt" % out_dir, "--tls-key", "%s/collector.key" % out_dir]
    rollout = cli + ["rollout", "serve", "--state", "%s/rollout.db" % STATE_DIR, "--registry",
                     "%s/registry.json" % out_dir, "--broker", "mqtts://%s:%s" % (host, port), "--broker-dir", out_dir]
    hardening = ["NoNewPrivileges=true", "ProtectSystem=full", "ProtectHome=read-only", "PrivateTmp=true"]
    out = {}
    out["civicmote-broker.service"] = "\n".join([
        "[Unit]", "Description=civicmote city broker (Mosquitto, mutual TLS, per-device ACL, CRL)",
        "After=network-online.target", "Wants=network-online.target civicmote-broker-refresh.timer", "",
        "[Service]", "Type=simple",
        "# an expiry warning is logged, never a reason not to start (\"-\": its exit code is ignored)",
        "ExecStartPre=-%s" % _cmd(cli + ["broker-config", "--check", "--out", out_dir]),
        "ExecStart=/usr/sbin/mosquitto -c %s/mosquitto.conf" % out_dir,
        "ExecReload=/bin/kill -HUP $MAINPID", "Restart=always", "RestartSec=2",
        "# Mosquitto starts as root, reads its configuration, then drops to the `user` it names",
        "LimitNOFILE=1048576"] + hardening + ["ReadWritePaths=%s/data" % out_dir,
                                              "", "[Install]", "WantedBy=multi-user.target", ""])
    out["civicmote-collector.service"] = "\n".join([
        "[Unit]", "Description=civicmote city collector (verify, store, report gaps)",
        "After=civicmote-broker.service network-online.target", "Wants=network-online.target", "",
        "[Service]", "Type=simple", "ExecStart=%s" % _cmd(collect),
        "Restart=always", "RestartSec=2", "StateDirectory=civicmote", "StateDirectoryMode=0750", "UMask=0027"]
        + (["User=%s" % collector_user] if collector_user else []) + hardening
        + ["", "[Install]", "WantedBy=multi-user.target", ""])
    out["civicmote-rollout.service"] = "\n".join([
        "[Unit]", "Description=civicmote rollout service (signed update orders, staged rollouts, device update status)",
        "After=civicmote-broker.service network-online.target", "Wants=network-online.target", "",
        "[Service]", "Type=simple", "ExecStart=%s" % _cmd(rollout),
        "Restart=always", "RestartSec=2", "StateDirectory=civicmote", "StateDirectoryMode=0750", "UMask=0027"]
        + hardening + ["", "[Install]", "WantedBy=multi-user.target", ""])
    out["civicmote-broker-refresh.service"] = "\n".join([
        "[Unit]", "Description=civicmote: re-sign the broker's CRL, re-write its ACL from the registry, reload it",
        "After=civicmote-broker.service", "",
        "[Service]", "Type=oneshot", "UMask=0077",
        "LoadCredential=ca-passphrase:%s" % PASSPHRASE_FILE,
        "Environment=CIVICMOTE_CA_PASSPHRASE_FILE=%d/ca-passphrase",
        "ExecStart=%s" % _cmd(refresh),
        "ExecStartPost=%s" % _cmd(cli + ["broker-config", "--check", "--out", out_dir]), ""])
    out["civicmote-broker-refresh.timer"] = "\n".join([
        "[Unit]", "Description=civicmote: refresh the broker's CRL daily (it is valid 30 days)", "",
        "[Timer]", "OnBootSec=5min", "OnCalendar=daily", "RandomizedDelaySec=1h", "Persistent=true", "",
        "[Install]", "WantedBy=timers.target", ""])
    out["civicmote-broker-refresh.path"] = "\n".join([
        "[Unit]", "Description=civicmote: apply registry changes to the broker", "",
        "[Path]", "PathChanged=%s" % registry, "Unit=civicmote-broker-refresh.service", "",
        "[Install]", "WantedBy=paths.target", ""])
    return out


def forward_unit(url, store, state, registry=None, page_url=None, instant=False, user=None, python=None):
    """civicmote-forward-sensorthings.service: `civicmote forward sensorthings URL --follow` next to the
    collector, reading its store and keeping its state under STATE_DIR; restarted whenever it stops
    (it resumes from the last acknowledged seq of each device)."""
    py = python or sys.executable
    cmd = [py, "-m", "provisioning.cli", "forward", "sensorthings", url, "--store", store, "--state", state,
           "--follow"]
    if registry:
        cmd += ["--registry", registry]
    if page_url:
        cmd += ["--page-url", page_url]
    if instant:
        cmd += ["--phenomenon-time", "end"]
    return "\n".join([
        "[Unit]", "Description=civicmote: forward verified summaries to the city's SensorThings server %s" % url,
        "After=civicmote-collector.service network-online.target", "Wants=network-online.target", "",
        "[Service]", "Type=simple", "ExecStart=%s" % _cmd(cmd),
        "Restart=always", "RestartSec=10", "StateDirectory=civicmote", "StateDirectoryMode=0750", "UMask=0027"]
        + (["User=%s" % user] if user else [])
        + ["NoNewPrivileges=true", "ProtectSystem=full", "ProtectHome=read-only", "PrivateTmp=true",
           "", "[Install]", "WantedBy=multi-user.target", ""])
