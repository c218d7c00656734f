"""The city's public face: `civicmote web`, the page behind the pole's QR code (CPython only).

Used by residents (a page per device: what it measures in the plain words of its signed
manifest, what it never collects, its latest values and last day as charts, and how to check
its signatures themselves), by the city's operators (the fleet view and a Prometheus endpoint,
loopback-only unless an access token is set) and by anyone who wants the data out (CSV and
JSON per device and per district, values scaled to their units as the manifest names them).
`query` reads the collector's store and the registry, never writing either; `values` scales
released integers; `charts` draws inline SVG (the city's language is provisioning.language); `exports`
and `metrics` write data out; `app` is the Flask application. It reads the city side (store,
verifier) and the trust anchor (registry) and never imports field code or the command line.
"""
