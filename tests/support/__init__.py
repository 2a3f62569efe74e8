"""Helpers shared by the tests (real brokers on free ports, processes)."""
