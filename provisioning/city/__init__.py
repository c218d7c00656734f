"""The city's data plane: receiving, checking and keeping what devices publish (CPython only).

Used by the city's operators: `broker_config` writes the Mosquitto configuration (mutual TLS,
per-device ACLs pinned to the registered district, CRL, persistence, queue limits), `broker_ops`
reloads a running broker and reports expiry, `units` writes the systemd units, `embedded_broker`
is the demo's stand-in broker (amqtt), `subscription` is the collector's MQTT session (its network
in a thread of its own, handing messages over through `inbox`), and `intake` stores them in
batches, one transaction each, acknowledging a message only once its batch committed. Every
message is judged by `verifier`: the byte-exact envelope (`envelope`), the signature, one strict
canonical decode (`strict_cbor`) and one schema check (`schema`, the CDDL of docs/wire-format.md).
`collector` classifies and stores with de-duplication, gaps, held and rejected messages, and
`store` is its SQLite database. Scaled out: `store_pg` is the same store on PostgreSQL (N
collectors share one), `gaps` settles open gaps from the store whatever the arrival order,
`cluster_config` writes a RabbitMQ cluster's configuration with the same rules as Mosquitto's,
and `amqp_subscription` is a collector's session there (a competing consumer of its quorum
queue). The city side uses the trust anchor (pki/) and never imports field code.
"""
