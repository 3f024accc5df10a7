"""Notification text for every tier, the service's own alerts included."""

from __future__ import annotations

import typing

import pytest

from detector.alerts import Tier
from routing import content
from tests.routing.conftest import record


@pytest.mark.parametrize("tier", typing.get_args(Tier))
def test_headline_names_every_tier(tier: str) -> None:
    """Each tier an alert record can carry has a name in headline and facts."""
    alert = record("acme", tier=tier)

    headline = content.headline(alert)
    facts = dict(content.facts(alert, None))

    assert headline.startswith("[FIRING] acme: hourly-spend-high (")
    assert facts["Tier"] == tier.replace("_", " ")
