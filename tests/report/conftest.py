"""Fixtures for the report tests: private copies of the demo session (and its store) to change freely."""

from __future__ import annotations

import pytest

from sessioncopy import copy_session
from trace2eval.sessions.session import Session


@pytest.fixture
def session_copy(demo_session, demo_store, tmp_path) -> Session:
    """A validated demo session of our own, on our own copy of the store."""
    return copy_session(demo_session, demo_store["folder"], tmp_path)
