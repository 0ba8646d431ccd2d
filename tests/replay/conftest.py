"""Fixtures for the command-line tests: busy and free loopback ports."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def busy_port():
    """A loopback tcp port that another socket is listening on for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


@pytest.fixture
def free_port():
    """A loopback tcp port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
