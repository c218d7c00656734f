"""civicmote host side: the `civicmote` command line (CPython only)."""
