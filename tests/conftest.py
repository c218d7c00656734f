import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The portable suite imports its helpers (`support`) by plain name, as it does on MicroPython.
for p in (HERE / "portable", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


# `make test` runs modules in parallel (pytest-xdist, `--dist loadfile`): each module is one work
# unit on one worker, so its module-scoped servers start once and its tests keep their order.
# Work units are handed out in collection order, so the longest go first and the short ones
# fill in around them.
LONGEST_FIRST = ["test_micropython.py", "test_delivery_kill.py", "test_board_heap.py", "test_bench_privacy.py",
                 "test_board_native.py", "test_demo.py", "test_privacy_person_audit.py", "test_bench_quick.py",
                 "test_cluster_rabbitmq.py", "test_chip_bridge.py", "test_ota_board.py", "test_pi_update_e2e.py",
                 "test_privacy_manifest_coverage.py",
                 "test_city_service.py", "test_hostile_city.py", "test_provision_serial.py", "test_collect_batch.py",
                 "test_sta_forward.py", "test_firmware_board.py", "test_privacy_driver_audit.py", "test_ota_cluster.py",
                 "test_ota_whole_path.py"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within a module
