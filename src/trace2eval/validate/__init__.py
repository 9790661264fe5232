"""Validate: run the generated suite for real and check what it produced; fix what failed."""
