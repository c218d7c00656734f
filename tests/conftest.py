import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The portable suite imports its helpers (`support`) by plain name, as it does on MicroPython.
for p in (HERE / "portable", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
