"""The street's people: passes, repeated passes, lingering, phones that rotate their addresses."""
from agent.emulators.people import HEARD_S, Person
from agent.emulators.signals import BleAdverts, PirEdges
from agent.emulators.street import Street

T = 1764241200  # 11:00 UTC


def _people(street, seconds):
    return [street.people.person(s) for s in range(T, T + seconds) if street.people.arrives(s)]


def test_constant_rate_and_kinds_of_people():
    street = Street(3, rate_per_h=600, repeat_share=0.2, linger_share=0.1)
    people = _people(street, 1800)
    assert 230 < len(people) < 370  # Poisson-ish around 300
    lingerers = [p for p in people if p.stay is not None]
    repeaters = [p for p in people if len(p.passes) > 1]
    assert 12 < len(lingerers) < 50 and 32 < len(repeaters) < 95
    for p in lingerers:
        assert 120 <= p.stay[1] - p.stay[0] < 900 and p.passes == []
    for p in repeaters:
        gaps = [b - a for a, b in zip(p.passes, p.passes[1:])]
        assert len(p.passes) <= 3 and min(gaps) >= 150 and max(gaps) < 450
    with_phone = [p for p in people if p.phone is not None]
    assert 0.5 < len(with_phone) / len(people) < 0.7


def test_a_lingerer_moves_on_arrival_and_departure_and_is_heard_all_along():
    still = Person(7, stay=(T, T + 600), phone=(7, 900, 0))
    assert still.motions() == [T, T + 600]
    assert still.heard() == [(T, T + 600)]
    fidgety = Person(8, stay=(T, T + 100), fidget_s=30)
    assert fidgety.motions() == [T, T + 30, T + 60, T + 90, T + 100]
    walker = Person(9, passes=[T, T + 900], phone=(9, 300, 0))
    assert walker.heard() == [(T, T + HEARD_S), (T + 900, T + 900 + HEARD_S)]
    assert walker.address(T) != walker.address(T + 900)  # rotated in between: looks like two phones


def test_fast_rotating_phones_are_a_share_of_the_street():
    street = Street(5, rate_per_h=1000, fast_share=0.5, fast_rotation_s=120)
    rotations = [p.phone[1] for p in _people(street, 1200) if p.phone is not None]
    fast = len([r for r in rotations if r == 120])
    assert 0.35 < fast / len(rotations) < 0.65 and set(rotations) == {120, 900}


def test_one_added_person_reaches_the_sensors():
    street = Street(6, rate_per_h=0)
    street.people.add(Person(42, passes=[T + 10], stay=(T + 100, T + 400), phone=(42, 900, 0)))
    assert street.people.moving(T + 10) and street.people.moving(T + 400) and not street.people.moving(T + 11)
    assert [p.pid for p in street.people.phones(T + 200)] == [42]
    assert street.people.truth(T, T + 3600) == (2, 1)
    pir = PirEdges(street)
    ble = BleAdverts(street, beacons=0)
    street.set_now(T * 1000)
    pir.take_count()
    ble.start()
    street.set_now((T + 500) * 1000)
    assert pir.take_count() == 3  # the pass, arriving to stay, leaving
    heard = []
    ble.horizon_s = 600
    ble.drain(lambda a: heard.append(bytes(a)))
    assert len(heard) == 1  # one phone, one address (no rotation in these 500 s)


def test_the_street_is_the_same_whatever_the_order_of_reads():
    a, b = Street(9, rate_per_h=600), Street(9, rate_per_h=600)
    late = [a.people.moving(s) for s in range(T + 3000, T + 3100)]
    early = [b.people.moving(s) for s in range(T, T + 100)]
    assert late == [b.people.moving(s) for s in range(T + 3000, T + 3100)]
    assert early == [a.people.moving(s) for s in range(T, T + 100)]
