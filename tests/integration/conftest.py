"""Integration tests: real protocols on loopback (servers are in tests/conftest.py)."""
