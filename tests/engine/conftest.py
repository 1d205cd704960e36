"""Fixtures for the training tests."""

from __future__ import annotations

import pytest

from recog.engine.callbacks import Reporter


class Messages(Reporter):
    """A silent reporter that keeps the messages a run would print."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def message(self, text: str) -> None:
        self.seen.append(text)


@pytest.fixture
def messages() -> Messages:
    return Messages()
