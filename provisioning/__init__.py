"""civicmote's host side (CPython only): the `civicmote` command and what it drives, by role.

    cli/      the command line: one module per command group, the one error handler, output
    demo/     `make demo`'s live view and the raw-streaming cost it compares against
    web/      `civicmote web`: each device's public page (the label's QR code), the fleet view,
              CSV/JSON exports, Prometheus /metrics and the SensorThings API (web/sta/), read from
              the store and the registry
    ota/      signed updates, the city's side: release keys, building and signing releases,
              the rollout state, its stages and the rollout service (`civicmote release`,
              `civicmote rollout`)
    forward/  `civicmote forward`: verified data pushed into a city's own platform (SensorThings)
    field/    the technician's tools: targets (folder, ssh, serial board), deploy, flash, the
              virtual board, pole labels
    city/     the city's data plane: broker configuration, collector, its store, the verifier,
              the MQTT subscription, the embedded demo broker
    pki/      the city's trust anchor: provisioning CA, proof of possession, device registry and
              its export
    device/   a Linux device's own side: its state folder, identity actions, the agent runner
    errors.py, files.py, broker_url.py   shared by every role

Imports run one way, down: cli, demo -> ota -> field, city -> pki -> device -> shared -> agent/;
web reads ota (the rollout state), city and pki only; forward reads web (its queries and mapping), city and pki. The city side never imports field code, no role imports the command line, and agent/ never
imports provisioning. tests/test_layout.py walks every import and holds these rules.
"""
