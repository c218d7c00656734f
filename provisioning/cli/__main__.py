"""`python -m provisioning.cli ...`: the same as the `civicmote` command (the systemd unit uses it)."""
import sys

from provisioning.cli import main

sys.exit(main())
