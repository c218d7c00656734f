"""A manifest's unit as an STA unitOfMeasurement with its UCUM code (CPython only).

Manifests name units as people write them ("°C", "µg/m³", "dB(A)"); STA clients and FIWARE want
UCUM (https://ucum.org). This table is the one place that translates them. A unit not in it is
passed through with the manifest's spelling and a urn:civicmote:unit: definition instead of
UCUM's, so nothing is invented. A-weighted decibels have no UCUM code: "dB", weighting in the name.
"""
from urllib.parse import quote

UCUM_URL = "http://unitsofmeasure.org/ucum.html"

# manifest spelling -> (name, UCUM code)
UNITS = {
    "°C": ("degree Celsius", "Cel"), "degC": ("degree Celsius", "Cel"),
    "µg/m³": ("microgram per cubic metre", "ug/m3"), "ug/m3": ("microgram per cubic metre", "ug/m3"),
    "dB(A)": ("decibel (A-weighted)", "dB"), "dBA": ("decibel (A-weighted)", "dB"), "dB": ("decibel", "dB"),
    "ppm": ("part per million", "[ppm]"), "Pa": ("pascal", "Pa"), "hPa": ("hectopascal", "hPa"),
    "%RH": ("percent relative humidity", "%"), "%": ("percent", "%"),
    "km/h": ("kilometre per hour", "km/h"), "m/s": ("metre per second", "m/s"), "s": ("second", "s"),
    "people": ("people", "{people}"), "person": ("people", "{people}"), "events": ("events", "{events}"),
    "devices": ("devices", "{devices}"), "count": ("count", "{count}"),
}


def unit_of_measurement(unit, stat=None):
    """{name, symbol, definition} for values of a statistic in `unit` (the manifest's spelling).
    `n` counts readings; `var` is in the unit squared."""
    unit = unit if isinstance(unit, str) else ""  # the collector's schema checks it is text; be sure
    if stat == "n" or stat and stat.startswith("hist"):
        unit = "count"
    name, code = UNITS.get(unit, (unit or "dimensionless", unit or "1"))
    known = unit in UNITS or not unit
    if stat == "var":
        name = "kelvin squared" if code == "Cel" else "%s squared" % name
        code = _squared(code)
    return {"name": name, "symbol": code, "definition": UCUM_URL if known else "urn:civicmote:unit:" + quote(code)}


def _squared(code):
    """ug/m3 -> ug2/m6, Cel -> K2 (a spread of Celsius is in kelvin), dB -> dB2."""
    if code == "Cel":
        return "K2"
    num, slash, den = code.partition("/")
    return _power(num) + (slash + _power(den) if slash else "")


def _power(code):
    """m3 -> m6, h -> h2."""
    head = code.rstrip("0123456789")
    power = code[len(head):]
    return head + str(int(power or 1) * 2)
