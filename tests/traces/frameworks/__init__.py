"""Real agent frameworks, autologged by MLflow, run against loopback model servers.

Shared by the layout tests (tests/traces/test_layouts.py) and `benchmarks/layouts.py`.
"""
