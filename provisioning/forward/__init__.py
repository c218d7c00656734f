"""Forwarding the city's verified data into the platforms a city already runs (CPython only).

    sensorthings.py    `civicmote forward sensorthings URL`: newly stored summaries into an OGC
                       SensorThings API v1.1 server (FROST-Server and others) as CreateObservations
                       batches, mapped by web/sta/model.py as civicmote web's own endpoint maps them
    sta_client.py      the HTTP client for that server (standard library only)
    forward_state.py   what it remembers between runs: the server's ids, each device's last
                       acknowledged seq

Used by the command line (cli/forward.py); reads the store through web/query.py, read only.
"""
