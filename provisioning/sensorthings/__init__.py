"""The city's data in OGC SensorThings API v1.1 terms (CPython only).

model.py maps the store's devices, manifests and summaries to STA entities (the one mapping,
used by civicmote web's read endpoint and by the forwarder); ucum.py gives a manifest's unit its
UCUM code; forward.py pushes newly stored summaries into a city's STA server (FROST-Server and
others) through sta_client.py, remembering what it created and how far it got in forward_state.py.
"""
