"""An organisation's intake ("setup guide"): checking its configuration and a patient's answers.

Pure (no trio, no storage): the queue actor calls these, and pages may show the same messages. A
configuration is an ordered list of steps, each a title and fields of the kinds in
:class:`~actors.ondemand.messages.FieldKind`; answers are checked against the fields of the step
they belong to. Every refusal is a :class:`ValueError` whose text names the field.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from actors.ondemand.messages import (
    DETAIL_EMAIL,
    DETAIL_NAME,
    DETAIL_PHONE,
    DETAIL_REGION,
    FieldKind,
    IntakeField,
    IntakeStep,
)

MAX_STEPS = 20
MAX_FIELDS = 20
MAX_CHOICES = 20
MAX_LABEL = 120
MAX_CHOICE = 80
#: Longest answer: a symptom described in a few sentences, not a letter.
MAX_VALUE = 500
MAX_NAME = 80
MAX_EMAIL = 254
MAX_REGION = 80
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}", re.ASCII)
EMAIL_PATTERN = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
PHONE_PATTERN = re.compile(r"\+?[0-9 ()\-]{6,30}", re.ASCII)
MIN_PHONE_DIGITS = 6
MAX_PHONE_DIGITS = 20
CONSENT_YES = "yes"
#: Keys the intake may not use: they are the patient details Meet Now asks for first.
RESERVED_KEYS = frozenset({DETAIL_NAME, DETAIL_EMAIL, DETAIL_PHONE, DETAIL_REGION})


def _text(value: object, what: str, limit: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text")
    text = value.strip()
    if required and not text:
        raise ValueError(f"{what} is required")
    if len(text) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    return text


def parse_steps(raw: object) -> tuple[IntakeStep, ...]:
    """The configuration as typed steps, or ``ValueError`` naming what is wrong."""
    if not isinstance(raw, list) or len(raw) > MAX_STEPS:
        raise ValueError(f"the intake is a list of at most {MAX_STEPS} steps")
    steps: list[IntakeStep] = []
    keys: set[str] = set()
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"step {number} is not a step")
        title = _text(item.get("title", ""), f"step {number}'s title", MAX_LABEL)
        fields_raw = item.get("fields")
        if not isinstance(fields_raw, list) or not 1 <= len(fields_raw) <= MAX_FIELDS:
            raise ValueError(f"step {number} needs 1-{MAX_FIELDS} fields")
        fields: list[IntakeField] = []
        for spec in fields_raw:
            if not isinstance(spec, dict):
                raise ValueError(f"a field of step {number} is not a field")
            key = spec.get("key")
            if not isinstance(key, str) or KEY_PATTERN.fullmatch(key) is None:
                raise ValueError(f"step {number}: a field key is lower-case letters and digits")
            if key in keys or key in RESERVED_KEYS:
                raise ValueError(f"the field key {key!r} is used twice")
            keys.add(key)
            label = _text(spec.get("label", ""), f"the label of {key}", MAX_LABEL)
            try:
                kind = FieldKind(str(spec.get("kind")))
            except ValueError:
                raise ValueError(f"{label}: no such kind of field") from None
            required = spec.get("required", False)
            if not isinstance(required, bool):
                raise ValueError(f"{label}: required is true or false")
            choices: tuple[str, ...] = ()
            if kind is FieldKind.CHOICE:
                raw_choices = spec.get("choices")
                if not isinstance(raw_choices, list) or not 1 <= len(raw_choices) <= MAX_CHOICES:
                    raise ValueError(f"{label}: a choice needs 1-{MAX_CHOICES} options")
                choices = tuple(_text(c, f"an option of {label}", MAX_CHOICE) for c in raw_choices)
                if len(set(choices)) != len(choices):
                    raise ValueError(f"{label}: an option is listed twice")
            fields.append(IntakeField(key, label, kind, required, choices))
        steps.append(IntakeStep(title, tuple(fields)))
    return tuple(steps)


def steps_config(steps: tuple[IntakeStep, ...]) -> list[dict[str, Any]]:
    """What storage keeps (and :func:`parse_steps` reads back)."""
    return [step.view() for step in steps]


def phone_ok(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    return (
        PHONE_PATTERN.fullmatch(value) is not None
        and MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS
    )


def check_answers(step: IntakeStep, values: dict[str, Any]) -> dict[str, str]:
    """The cleaned answers of one step (only its own fields), or ``ValueError`` naming the field."""
    known = {f.key for f in step.fields}
    unknown = sorted(repr(k) for k in values if k not in known)  # msgpack keys may be bytes
    if unknown:
        raise ValueError(f"{unknown[0]} is not a field of this step")
    cleaned: dict[str, str] = {}
    for spec in step.fields:
        raw = values.get(spec.key, "")
        if isinstance(raw, bool) and spec.kind is FieldKind.CONSENT:
            raw = CONSENT_YES if raw else ""
        value = _text(raw, spec.label, MAX_VALUE, required=False)
        if not value:
            if spec.required:
                raise ValueError(f"{spec.label} is required")
            continue
        if spec.kind is FieldKind.CHOICE and value not in spec.choices:
            raise ValueError(f"{spec.label}: choose one of the options")
        if spec.kind is FieldKind.DATE:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{spec.label}: a date is YYYY-MM-DD") from None
            if len(value) != len("YYYY-MM-DD"):
                raise ValueError(f"{spec.label}: a date is YYYY-MM-DD")
        if spec.kind is FieldKind.PHONE and not phone_ok(value):
            raise ValueError(f"{spec.label}: a phone number has 6-20 digits")
        if spec.kind is FieldKind.CONSENT and value != CONSENT_YES:
            raise ValueError(f"{spec.label}: answer yes to go on")
        cleaned[spec.key] = value
    return cleaned


def check_details(raw: dict[str, str]) -> dict[str, str]:
    """Meet Now's patient details: a name (required), email, phone and region (optional)."""
    details = {DETAIL_NAME: _text(raw.get(DETAIL_NAME, ""), "Your name", MAX_NAME)}
    email = _text(raw.get(DETAIL_EMAIL, ""), "Email", MAX_EMAIL, required=False)
    if email:
        if EMAIL_PATTERN.fullmatch(email) is None:
            raise ValueError("Email: that is not an email address")
        details[DETAIL_EMAIL] = email
    phone = _text(raw.get(DETAIL_PHONE, ""), "Phone", MAX_VALUE, required=False)
    if phone:
        if not phone_ok(phone):
            raise ValueError("Phone: a phone number has 6-20 digits")
        details[DETAIL_PHONE] = phone
    region = _text(raw.get(DETAIL_REGION, ""), "State or region", MAX_REGION, required=False)
    if region:
        details[DETAIL_REGION] = region
    return details
