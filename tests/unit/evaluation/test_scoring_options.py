"""Scoring options and distance unit follow params.yaml's evaluate section."""

from __future__ import annotations

import yaml

from components.evaluation.scoring import distance_unit, scoring_options
from components.params.config import parse_params
from tests.data import HANDSET_PARAMS

PARAMS = HANDSET_PARAMS


def test_options_and_unit_from_params() -> None:
    raw = yaml.safe_load(PARAMS.read_text())
    p = parse_params(raw)
    assert distance_unit(p) == "px"
    opts = scoring_options(p)
    assert list(opts.class_names) == p.data.class_names and opts.worst_cases == p.evaluate.worst_cases
    raw["evaluate"].update(spacing=[0.7, 0.7], connectivity=2, surface_tolerance=2.0)
    p2 = parse_params(raw)
    assert distance_unit(p2) == "mm"
    assert (tuple(scoring_options(p2).spacing), scoring_options(p2).connectivity) == ((0.7, 0.7), 2)
