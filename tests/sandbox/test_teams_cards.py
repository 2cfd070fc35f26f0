"""The Teams stand-in's card checks: real cards pass, the fast `anyOf` agrees with a plain draft-06 validator."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests
from jsonschema import Draft6Validator

from mlc_sandbox.teams import TeamsSandbox
from mlc_sandbox.teams.cards import CardValidator, load_schema

SHARED_SCHEMA = Path("/work/shared/specs/adaptive-card-1.5.schema.json")

# the "activity update" sample of adaptivecards.io, plus most other element and action types of 1.5
RICH_CARD = {
    "type": "AdaptiveCard", "version": "1.5", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "body": [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": "Publish Adaptive Card Schema"},
        {"type": "ColumnSet", "columns": [
            {"type": "Column", "width": "auto", "items": [
                {"type": "Image", "style": "Person", "url": "https://example.com/matt.png", "altText": "Matt",
                 "size": "Small"}]},
            {"type": "Column", "width": "stretch", "items": [
                {"type": "TextBlock", "weight": "Bolder", "text": "Matt Hidinger", "wrap": True},
                {"type": "TextBlock", "spacing": "None", "text": "Created {{DATE(2017-02-14T06:08:39Z,SHORT)}}",
                 "isSubtle": True, "wrap": True}]}]},
        {"type": "FactSet", "facts": [{"title": "Board:", "value": "Adaptive Cards"},
                                      {"title": "List:", "value": "Backlog"}]},
        {"type": "Container", "style": "emphasis", "id": "details", "isVisible": False, "items": [
            {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "late ", "color": "Attention"},
                                                  "plain inline"]},
            {"type": "ImageSet", "images": [{"type": "Image", "url": "https://example.com/a.png"}]}]},
        {"type": "Table", "columns": [{"width": 1}, {"width": 2}], "rows": [
            {"type": "TableRow", "cells": [
                {"type": "TableCell", "items": [{"type": "TextBlock", "text": "PO", "weight": "Bolder"}]},
                {"type": "TableCell", "items": [{"type": "TextBlock", "text": "P1000001"}]}]}]},
        {"type": "Input.Text", "id": "comment", "placeholder": "Add a comment", "isMultiline": True},
        {"type": "Input.ChoiceSet", "id": "reason", "choices": [{"title": "Late", "value": "late"}]},
        {"type": "ActionSet", "actions": [{"type": "Action.ToggleVisibility", "title": "Details",
                                           "targetElements": ["details"]}]},
        {"type": "TextBlock", "text": "fallback demo", "fallback": "drop", "requires": {"adaptiveCards": "1.5"}},
    ],
    "actions": [
        {"type": "Action.ShowCard", "title": "Set due date", "card": {
            "type": "AdaptiveCard", "body": [{"type": "Input.Date", "id": "dueDate"}],
            "actions": [{"type": "Action.Submit", "title": "OK"}]}},
        {"type": "Action.OpenUrl", "title": "View", "url": "https://adaptivecards.io"},
        {"type": "Action.Execute", "title": "Approve", "verb": "approve"},
    ],
}

TYPES = ["TextBlock", "Image", "Container", "ColumnSet", "FactSet", "ImageSet", "RichTextBlock", "Table", "ActionSet",
         "Input.Text", "Input.ChoiceSet", "Input.Date", "Media", "Action.Submit", "Action.OpenUrl", "Column",
         "TableCell", "NotAType"]


def _objects(node, path=()):
    """Every object in a card with its path."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _objects(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, (*path, i))


def _at(card, path):
    for part in path:
        card = card[part]
    return card


def _small_cards():
    """One card per element and action of the rich card (small cards keep the plain validator fast)."""
    for element in RICH_CARD["body"]:
        yield {"type": "AdaptiveCard", "version": "1.5", "body": [element]}
    for action in RICH_CARD["actions"]:
        yield {"type": "AdaptiveCard", "version": "1.5", "actions": [action]}


def _mutations():
    """Each small card with one object's type swapped, or one key removed: mostly invalid, some still valid."""
    for small in _small_cards():
        for path, obj in list(_objects(small)):
            if not path:
                continue
            for key in list(obj):
                mutated = copy.deepcopy(small)
                del _at(mutated, path)[key]
                yield mutated
            if "type" in obj:
                for kind in TYPES:
                    mutated = copy.deepcopy(small)
                    _at(mutated, path)["type"] = kind
                    yield mutated


def test_the_packaged_schema_is_the_shared_one():
    if SHARED_SCHEMA.exists():  # the shared folder of the project; the package carries its own copy
        assert load_schema() == json.loads(SHARED_SCHEMA.read_text())
    assert load_schema()["$schema"] == "http://json-schema.org/draft-06/schema#"


def test_a_rich_real_world_card_is_valid():
    assert CardValidator().problems(RICH_CARD) == []


def test_the_fast_validator_agrees_with_plain_draft_06():
    validator, plain = CardValidator(), Draft6Validator(load_schema())
    cards = list(_mutations())[::3]  # a third of them: the plain validator takes about 6 ms a card
    assert len(cards) > 200
    verdicts = [(validator.conforms(c), plain.is_valid(c)) for c in cards]
    assert all(fast == slow for fast, slow in verdicts)
    assert {fast for fast, _ in verdicts} == {True, False}  # both kinds were exercised
    # and what does not conform is explained with at least one path
    for card in cards:
        if not validator.conforms(card):
            problems = validator.problems(card)
            assert problems and all(p.path.startswith("$") for p in problems)


def test_a_rich_card_posted_through_a_webhook():
    with TeamsSandbox(port=0, channels="general") as teams:
        message = {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                       "contentUrl": None, "content": RICH_CARD}]}
        assert requests.post(teams.webhook_url("general"), json=message).status_code == 202
        assert teams.cards("general") == [RICH_CARD]


@pytest.mark.parametrize("extension, path", [
    ({"width": "Full", "entities": [{"type": "mention", "text": "<at>Ann</at>",
                                     "mentioned": {"id": "ann@example.com", "name": "Ann"}}]}, None),
    ({"entities": [{"type": "mention", "text": "<at>Ann</at>"}]}, "$.msteams.entities[0].mentioned"),
    ({"entities": "Ann"}, "$.msteams.entities"),
    ("Full", "$.msteams"),
])
def test_the_msteams_extension(extension, path):
    problems = CardValidator().problems({**RICH_CARD, "msteams": extension})
    assert [p.path for p in problems] == ([path] if path else [])
