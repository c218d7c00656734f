"""civicmote web's read-only OGC SensorThings API v1.1 endpoint, /sta/v1.1 (CPython only).

    model.py      the one mapping from the store's devices, manifests and summaries to STA entities
                  (also used by the forwarder, provisioning/forward/)
    ucum.py       manifest units as UCUM units of measurement
    odata.py      query options ($top ... $filter), parsed and checked
    entities.py   the entity sets, read from the store
    routes.py     the Flask routes, links, paging and errors
"""
