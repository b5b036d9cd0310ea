import pytest
from pydantic import ValidationError

from tests.control.helpers import END, EOS, INDUCE, START
from thinkctl.control.spec import ControlSpec


def test_spec_round_trips_as_plain_data_and_builds_a_stack():
    spec = ControlSpec(
        think=(START, END), budget={"max": 3, "close": [END, INDUCE], "stop": [END, EOS]}
    )
    wire = spec.model_dump(mode="json")  # what travels in SamplingParams.extra_args
    again = ControlSpec.model_validate(wire)
    assert again == spec and again.controller_names() == ["budget"]
    stack = again.build([START])
    assert [c.name for c in stack.controllers] == ["budget"]


@pytest.mark.parametrize(
    "wire",
    [
        {"think": [START, END], "budget": {"max": -2}},
        {"think": [START, END], "budget": {"max": 2, "min": 3, "close": [END]}},
        {"think": [START, END], "budget": {"max": 2}},  # no closing ids
        {"think": [START, END], "budget": {"bogus": 1}},
        {"think": [START]},
        {"think": [START, END], "unknown": {}},
        # a per-query budget without its maximum, or with budgets that do not fit its edges
        {
            "think": [START, END],
            "budget": {"close": [END], "query": {"effort": 0.5, "budgets": [5]}},
        },
        {
            "think": [START, END],
            "budget": {
                "max": 5,
                "close": [END],
                "query": {"effort": 0.5, "edges": [10.0], "budgets": [5]},
            },
        },
    ],
)
def test_bad_specs_are_refused(wire):
    with pytest.raises(ValidationError):
        ControlSpec.model_validate(wire)
