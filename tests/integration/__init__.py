"""Integration tests: most of them run ngspice (tests/conftest.py marks them `ngspice`)."""
