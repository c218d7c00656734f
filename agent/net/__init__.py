"""Network edge of the agent: MQTT 3.1.1 for summaries, on both runtimes.

Modules
- `mqtt_packets`, `mqtt_codec`: the pure MQTT 3.1.1 codec (bytes in -> packets out).
- `transport`: the errors and the backoff shared by both transports.
- `mqtt_client`: our small client (portable) = codec + socket loop with timeouts.
- `socket_cpython` (CPython only), `socket_mpy` (MicroPython): socket/TLS adapters that
  the client obtains through an injected factory.
- `paho_transport` (CPython only): the same interface on paho-mqtt 2.x.
- `paho_session` (CPython only): the paho-mqtt session shared by `PahoTransport` and the
  city collector's `provisioning.city.subscription.Subscription`.

The transport interface (both `MQTTClient` and `PahoTransport`), for one cooperative loop.
`now` is a monotonic time in seconds (int or float) from the caller; nothing here sleeps
longer than its configured `timeout`.

    t.connect(now) -> bool       start or continue connecting when the backoff allows; True
                                 once connected. Never blocks longer than `timeout`.
    t.connected                  True between CONNACK (accepted) and a loss.
    t.can_publish                connected and fewer than `max_inflight` QoS 1 publishes
                                 unacknowledged.
    t.publish(topic, payload, qos=1, retain=False, now=None) -> handle
                                 send one message (now: when; None = the next poll starts
                                 its PUBACK clock); the handle (an int) comes back in an
                                 ("acked", handle) event on PUBACK (QoS 0: at once). Raises
                                 TransportError if not connected or the in-flight window is
                                 full. Unacked QoS 1 messages are resent with DUP after a
                                 reconnect; their handles stay valid.
    t.poll(now, wait=0) -> [event]
                                 do the I/O due now (read, keepalive, PUBACK/CONNACK
                                 deadlines); wait: at most this many seconds for data.
                                 Events are tuples:
                                   ("connected", session_present)
                                   ("acked", handle)
                                   ("message", topic, payload)   (subscriptions, for tests)
                                   ("lost", reason)              the connection went away;
                                                                 the transport backs off and
                                                                 reconnects on connect(now)
    t.pending()                  handles published and not yet acknowledged
    t.subscribe([(filter, qos)], now)   for tests and tools (the SUBACK is not awaited)
    t.last_error                 the reason of the last loss, for health counters
    t.close()                    clean DISCONNECT (so the will is not sent) and close.

Birth and will: give `status_topic`; the transport sets the will `offline` (QoS 1, retained)
and publishes `online` (retained) right after each CONNACK.
"""
