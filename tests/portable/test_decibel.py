"""Energy-average sound levels (LAeq) in exact integers, against a 60-digit decimal reference."""
from agent.core import decibel
from agent.core.window import Window
from support import load_vectors


def test_leq_vectors():
    for v in load_vectors("decibel.json"):
        xs = v["tenths"]
        total = 0
        for x in xs:
            total += decibel.energy(x)
        assert decibel.level(total, len(xs)) == v["leq"], (xs[:5], v["exact"])


def test_window_releases_leq():
    for v in load_vectors("decibel.json"):
        w = Window(leq=True)
        for x in v["tenths"]:
            w.add(x)
        assert w.stats(("leq", "min", "max")) == [v["leq"], min(v["tenths"]), max(v["tenths"])]


def test_leq_is_louder_than_the_mean_of_decibels():
    # One loud lorry in a quiet minute: the energy average hears it, the arithmetic mean hides it.
    xs = [450] * 59 + [900]
    w = Window(leq=True)
    for x in xs:
        w.add(x)
    assert w.mean() == 458 and w.stats(("leq",))[0] == 722  # 45.8 dB against 72.2 dB


def test_energy_table_is_monotonic_and_exact_at_decades():
    prev = 0
    for t in range(0, 1300):
        e = decibel.energy(t)
        assert e > prev
        prev = e
    assert decibel.energy(0) == decibel.SCALE and decibel.energy(100) == 10 * decibel.SCALE
    assert decibel.energy(-30) == decibel.SCALE and Window().stats(("leq",)) == [None]
