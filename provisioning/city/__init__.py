"""The city's data plane: receiving, checking and keeping what devices publish (CPython only).

Used by the city's operators: `broker_config` writes the Mosquitto configuration (mutual TLS,
per-device ACLs, CRL), `embedded_broker` is the demo's stand-in broker (amqtt), `subscription`
is the collector's MQTT session, `verifier` checks COSE_Sign1 messages against the registry's
keys, `collector` classifies and stores them with de-duplication and gaps, and `store` is its
SQLite database. The city side uses the trust anchor (pki/) and never imports field code.
"""
