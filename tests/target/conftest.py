"""Fixtures for the target tests (script_server.py holds the server they start)."""

from __future__ import annotations

import pytest
from script_server import script_server


@pytest.fixture(scope="module")
def script_server_url():
    with script_server() as url:
        yield url
