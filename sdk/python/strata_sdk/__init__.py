"""Guest-side SDK for Strata scorers written in Python (mirrors the Rust `strata-sdk`).

A scorer is a function from a :class:`Lead` to a :class:`Score`, exported with
:func:`export_scorer`; ``componentize-py`` (run by ``strata plugin build``) turns the
module into a component of the ``scorer`` world of ``strata:plugin@0.1.0``::

    import strata_sdk
    from strata_sdk import Lead, Score

    def score(lead: Lead) -> Score:
        budget = lead.budget or 0.0
        value = min(max(budget / 1000.0, 0.0), 100.0)
        return (strata_sdk.score(value)
                .factor("budget", value)
                .reasoning(f"budget {budget:.0f}")
                .build())

    WitWorld = strata_sdk.export_scorer(score)

The types are the ones componentize-py generates from the WIT (``wit_world``), so a
score built here is what the host receives. Raise :func:`invalid_input` or
:func:`failed` for a typed ``plugin-error``; any other exception traps the call and the
host reports it as ``plugin@version panicked: <exception>``.
"""

import math

import wit_world
from componentize_py_types import Err
from wit_world.imports import types as _types

from . import log

__all__ = [
    "Attribute",
    "Factor",
    "Lead",
    "LeadStatus",
    "Priority",
    "Score",
    "ScoreBuilder",
    "IMMEDIATE_FROM",
    "HIGH_FROM",
    "MEDIUM_FROM",
    "attr",
    "attr_float",
    "default_action",
    "export_scorer",
    "factor",
    "failed",
    "invalid_input",
    "log",
    "priority_from_score",
    "score",
]

Attribute = _types.Attribute
Factor = _types.Factor
Lead = _types.Lead
LeadStatus = _types.LeadStatus
Priority = _types.Priority
Score = _types.Score

#: Score at or above which a lead is ``Priority.IMMEDIATE``.
IMMEDIATE_FROM = 85.0
#: Score at or above which a lead is ``Priority.HIGH``.
HIGH_FROM = 65.0
#: Score at or above which a lead is ``Priority.MEDIUM``; below it, ``Priority.LOW``.
MEDIUM_FROM = 40.0


def _clamp(v: float, lo: float, hi: float) -> float:
    """``v`` clamped into ``lo..hi``; NaN becomes ``lo``."""
    if math.isnan(v):
        return lo
    return min(max(v, lo), hi)


def priority_from_score(value: float) -> Priority:
    """The priority band of a 0-100 score: immediate >= 85, high >= 65, medium >= 40."""
    if value >= IMMEDIATE_FROM:
        return Priority.IMMEDIATE
    if value >= HIGH_FROM:
        return Priority.HIGH
    if value >= MEDIUM_FROM:
        return Priority.MEDIUM
    return Priority.LOW


_DEFAULT_ACTIONS = {
    Priority.IMMEDIATE: "Call today: route to a senior rep",
    Priority.HIGH: "Contact within 48 hours",
    Priority.MEDIUM: "Add to a nurture sequence",
    Priority.LOW: "Keep in marketing automation; no sales action",
}


def default_action(priority: Priority) -> str:
    """A generic next step for the band, for scorers without their own wording."""
    return _DEFAULT_ACTIONS[priority]


def factor(name: str, value: float) -> Factor:
    """A named factor; ``value`` is clamped to 0-100 (NaN becomes 0)."""
    return Factor(name, _clamp(float(value), 0.0, 100.0))


class ScoreBuilder:
    """Builds a valid :class:`Score`: value within 0-100, confidence within 0-1, no NaN.

    Priority defaults to :func:`priority_from_score`, the action to
    :func:`default_action`, confidence to 1.
    """

    def __init__(self, value: float):
        self._value = float(value)
        self._priority = None
        self._action = None
        self._reasoning = ""
        self._confidence = 1.0
        self._factors = []

    def factor(self, name: str, value: float) -> "ScoreBuilder":
        """Adds a factor (see :func:`factor`)."""
        self._factors.append(factor(name, value))
        return self

    def priority(self, priority: Priority) -> "ScoreBuilder":
        """Overrides the priority derived from the value."""
        self._priority = priority
        return self

    def action(self, action: str) -> "ScoreBuilder":
        """Sets the recommended action."""
        self._action = action
        return self

    def reasoning(self, reasoning: str) -> "ScoreBuilder":
        """Sets the reasoning text."""
        self._reasoning = reasoning
        return self

    def confidence(self, confidence: float) -> "ScoreBuilder":
        """Sets the confidence, clamped to 0-1 (default 1)."""
        self._confidence = float(confidence)
        return self

    def build(self) -> Score:
        """The finished score."""
        value = _clamp(self._value, 0.0, 100.0)
        priority = self._priority if self._priority is not None else priority_from_score(value)
        action = self._action if self._action is not None else default_action(priority)
        return Score(
            value,
            priority,
            action,
            self._reasoning,
            _clamp(self._confidence, 0.0, 1.0),
            list(self._factors),
        )


def score(value: float) -> ScoreBuilder:
    """Starts a score of ``value`` (clamped to 0-100 on :meth:`ScoreBuilder.build`)."""
    return ScoreBuilder(value)


def attr(lead: Lead, name: str):
    """The trimmed value of the attribute ``name`` (exact match), or None when absent,
    empty, or the literal ``Select`` (data sets such as X Education use it for "nothing
    chosen")."""
    for a in lead.attributes:
        if a.name == name:
            value = a.value.strip()
            return value if value and value != "Select" else None
    return None


def attr_float(lead: Lead, name: str):
    """The attribute ``name`` as a finite float, or None when absent or not a number."""
    text = attr(lead, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def invalid_input(message: str) -> Err:
    """``raise strata_sdk.invalid_input("...")``: the input is not something this scorer
    can handle (the host reports ``plugin@version refused the input: ...``)."""
    return Err(_types.PluginError_InvalidInput(message))


def failed(message: str) -> Err:
    """``raise strata_sdk.failed("...")``: the scorer failed for another reason (the host
    reports ``plugin@version failed: ...``)."""
    return Err(_types.PluginError_Failed(message))


def export_scorer(fn):
    """The class componentize-py exports for the ``score`` function; assign it to
    ``WitWorld`` in the app module: ``WitWorld = strata_sdk.export_scorer(score)``."""

    class WitWorld(wit_world.WitWorld):
        def score(self, lead: Lead) -> Score:
            return fn(lead)

    WitWorld.__doc__ = fn.__doc__
    return WitWorld
