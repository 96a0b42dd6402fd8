"""The murmur label schema: the 11 features murmurlm predicts, their closed class lists, and the
auxiliary targets. This module is the only place that spells CirCor's class strings.

Class strings are CirCor 1.0.3's own (Oliveira et al., IEEE JBHI 2022, Table 2 and the
``training_data.csv`` header). ``NO_MURMUR`` ("nan", as written in CirCor's files) is an explicit
class of every systolic/diastolic feature: it is the answer for a patient without that murmur.

Examples
--------
>>> from murmurlm.data.labels import FEATURES, feature
>>> len(FEATURES)
11
>>> feature("Systolic murmur timing").classes
('nan', 'Early-systolic', 'Holosystolic', 'Mid-systolic', 'Late-systolic')
>>> feature("Murmur").encode("Unknown")
1
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from murmurlm.errors import MurmurlmError

NO_MURMUR = "nan"
"""CirCor's string for "no such murmur" in every murmur-character field."""

LOCATIONS: tuple[str, ...] = ("AV", "PV", "TV", "MV", "Phc")
"""Auscultation locations: aortic, pulmonary, tricuspid, mitral valve, and any other place."""


class LabelError(MurmurlmError, ValueError):
    """An unknown label string, naming the feature and the valid classes."""


@dataclass(frozen=True)
class Feature:
    """One categorical target.

    ``name`` is the column name in ``training_data.csv`` (and in predictions files), ``classes`` the
    closed list in a fixed order (index = class id), ``murmur`` which murmur the feature describes
    ("systolic", "diastolic" or None for the presence field itself).
    """

    name: str
    classes: tuple[str, ...]
    murmur: str | None = None
    question: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def present_classes(self) -> tuple[str, ...]:
        """The classes that describe an existing murmur (all but ``NO_MURMUR``)."""
        return tuple(c for c in self.classes if c != NO_MURMUR)

    def normalise(self, value: object) -> str:
        """Map a raw cell (str, float nan, None, '') to a class string, or raise LabelError."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text = NO_MURMUR
        else:
            text = str(value).strip()
            if text == "" or text.lower() == "nan":
                text = NO_MURMUR
        if text not in self.classes:
            raise LabelError(
                f"unknown label {text!r} for {self.name!r}; valid: {', '.join(self.classes)}"
            )
        return text

    def encode(self, value: object) -> int:
        """Class id of a raw label value."""
        return self.classes.index(self.normalise(value))

    def decode(self, index: int) -> str:
        if not 0 <= int(index) < len(self.classes):
            raise LabelError(f"class id {index} out of range for {self.name!r} ({len(self.classes)} classes)")
        return self.classes[int(index)]


def _character(murmur: str, aspect: str, classes: tuple[str, ...], question: str) -> Feature:
    return Feature(f"{murmur.capitalize()} murmur {aspect}", (NO_MURMUR, *classes), murmur, question)


MURMUR = Feature(
    "Murmur", ("Present", "Unknown", "Absent"), None, "Is a heart murmur present in this recording?"
)

SYSTOLIC: tuple[Feature, ...] = (
    _character("systolic", "timing", ("Early-systolic", "Holosystolic", "Mid-systolic", "Late-systolic"),
               "What is the timing of the systolic murmur?"),
    _character("systolic", "shape", ("Crescendo", "Decrescendo", "Diamond", "Plateau"),
               "What is the shape of the systolic murmur?"),
    _character("systolic", "grading", ("I/VI", "II/VI", "III/VI"),
               "What is the grade of the systolic murmur on the Levine scale?"),
    _character("systolic", "pitch", ("Low", "Medium", "High"),
               "What is the pitch of the systolic murmur?"),
    _character("systolic", "quality", ("Blowing", "Harsh", "Musical"),
               "What is the quality of the systolic murmur?"),
)

DIASTOLIC: tuple[Feature, ...] = (
    _character("diastolic", "timing", ("Early-diastolic", "Holodiastolic", "Mid-diastolic"),
               "What is the timing of the diastolic murmur?"),
    _character("diastolic", "shape", ("Decrescendo", "Plateau"),
               "What is the shape of the diastolic murmur?"),
    _character("diastolic", "grading", ("I/IV", "II/IV", "III/IV"),
               "What is the grade of the diastolic murmur?"),
    _character("diastolic", "pitch", ("Low", "Medium", "High"),
               "What is the pitch of the diastolic murmur?"),
    _character("diastolic", "quality", ("Blowing", "Harsh"),
               "What is the quality of the diastolic murmur?"),
)

FEATURES: tuple[Feature, ...] = (MURMUR, *SYSTOLIC, *DIASTOLIC)
"""The 11 predicted features, in CirCor's column order."""

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

OUTCOME = Feature("Outcome", ("Abnormal", "Normal"), None, "Is the clinical outcome normal or abnormal?")
MOST_AUDIBLE_LOCATION = Feature(
    "Most audible location", (NO_MURMUR, *LOCATIONS), None, "Where is the murmur most audible?"
)
MURMUR_LOCATIONS_NAME = "Murmur locations"
"""Multi-label auxiliary target: '+'-joined subset of LOCATIONS, or 'nan'."""

AUXILIARY: tuple[Feature, ...] = (OUTCOME, MOST_AUDIBLE_LOCATION)

_BY_NAME = {f.name: f for f in (*FEATURES, *AUXILIARY)}


def feature(name: str) -> Feature:
    """Look a feature up by its CirCor column name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise LabelError(f"unknown feature {name!r}; valid: {', '.join(_BY_NAME)}") from None


def parse_locations(value: object) -> tuple[str, ...]:
    """Parse a '+'-joined location list ('AV+MV', 'nan', '') into a tuple of locations.

    >>> parse_locations("MV+Phc+TV")
    ('MV', 'Phc', 'TV')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    text = str(value).strip()
    if text in ("", NO_MURMUR):
        return ()
    parts = tuple(p.strip() for p in text.split("+"))
    for p in parts:
        if p not in LOCATIONS:
            raise LabelError(f"unknown location {p!r} in {text!r}; valid: {', '.join(LOCATIONS)}")
    return parts


def locations_to_multihot(locations: tuple[str, ...]) -> list[int]:
    """Multi-hot vector over LOCATIONS."""
    return [int(loc in locations) for loc in LOCATIONS]


def has_murmur(labels: dict[str, str], murmur: str) -> bool:
    """Whether a patient's labels describe a ``murmur`` ('systolic' or 'diastolic') murmur."""
    first = SYSTOLIC[0] if murmur == "systolic" else DIASTOLIC[0]
    return labels.get(first.name, NO_MURMUR) != NO_MURMUR


# CirCor's murmur labels for a patient are consistent: a character feature is set exactly when
# Murmur is Present and that murmur exists. Models may predict them independently; this helper
# makes a patient prediction consistent (used by aggregation and the report).
def make_consistent(labels: dict[str, str]) -> dict[str, str]:
    """Set every character feature to NO_MURMUR when Murmur is not Present, and the rest of a
    murmur's features to NO_MURMUR when its timing says there is no such murmur."""
    out = dict(labels)
    if out.get(MURMUR.name) != "Present":
        for f in (*SYSTOLIC, *DIASTOLIC):
            out[f.name] = NO_MURMUR
        return out
    for group in (SYSTOLIC, DIASTOLIC):
        if out.get(group[0].name, NO_MURMUR) == NO_MURMUR:
            for f in group:
                out[f.name] = NO_MURMUR
    return out
