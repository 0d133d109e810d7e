"""verify: each FC-RewardBench error type with a failing case and a correct near miss, BFCL's
normalisations, parallel order-insensitivity, precedence, canonical_key."""

import json

import pytest

from fcrm_ray.toolcall.schema import (
    ERROR_TYPES,
    ReferenceCall,
    SchemaError,
    ToolCall,
    normalize_tools,
    reference_from_bfcl,
)
from fcrm_ray.toolcall.verify import (
    PRECEDENCE,
    Verdict,
    canonical_key,
    first_acceptable_calls,
    standardize_string,
    verify,
    verify_calls,
)

TOOLS = normalize_tools([
    {
        "name": "weather.get",
        "description": "Weather for a city.",
        "parameters": {
            "type": "dict",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "detailed": {"type": "boolean"},
                "threshold": {"type": "float"},
                "hours": {"type": "array", "items": {"type": "integer"}},
                "point": {"type": "tuple", "items": {"type": "float"}},
                "filters": {"type": "dict", "properties": {"kind": {"type": "string"}}},
                "extra": {"type": "any"},
            },
            "required": ["city", "days"],
        },
    },
    {
        "name": "news.search",
        "description": "News.",
        "parameters": {"type": "dict", "properties": {"topic": {"type": "string"}, "limit": {"type": "integer"}},
                       "required": ["topic"]},
    },
])

REF = reference_from_bfcl([{"weather.get": {
    "city": ["New York, NY", "NYC"],
    "days": [3],
    "unit": ["celsius", ""],  # optional, may be omitted
    "detailed": [True],  # optional in the schema but the reference wants it
    "threshold": [2.5, ""],
    "hours": [[9, 12], ""],
    "point": [[1.5, 2.0], ""],
    "filters": [{"kind": ["rain", "storm"], "area": ["", "north"]}, ""],
}}])


def call(**overrides):
    args = {"city": "New York, NY", "days": 3, "detailed": True}
    for k, v in overrides.items():
        if v is DROP:
            args.pop(k, None)
        else:
            args[k] = v
    return json.dumps([{"name": "weather.get", "arguments": args}])


DROP = object()


def check(text, expected_error):
    v = verify(text, REF, TOOLS)
    assert isinstance(v, Verdict)
    if expected_error is None:
        assert v.correct and v.error_type is None, v
    else:
        assert not v.correct and v.error_type == expected_error, v
        assert v.detail
    return v


def test_reference_call_is_correct():
    v = check(call(), None)
    assert "match" in v.detail


def test_precedence_covers_the_taxonomy():
    assert set(PRECEDENCE) == set(ERROR_TYPES)


# --- one section per error type: failing case(s), then a correct near miss -------------------


def test_incorrect_output_format():
    for text in ["", "I would call weather.get for New York.", call()[:-5], "[weather.get('NYC', 3)]",
                 "[weather.get(city=NYC, days=3, detailed=True)]"]:
        v = check(text, "incorrect_output_format")
    assert "cannot parse" in v.detail
    # near miss: same call as Python syntax, in a fence with chatter, in tool_call tags
    check("[weather.get(city='NYC', days=3, detailed=True)]", None)
    check("Here you go:\n```json\n" + call() + "\n```", None)
    check('<tool_call>\n{"name": "weather.get", "arguments": {"city": "NYC", "days": 3, "detailed": true}}\n</tool_call>', None)


def test_incorrect_number_of_functions():
    one = json.loads(call())[0]
    v = check(json.dumps([one, one]), "incorrect_number_of_functions")
    assert "expected 1 call" in v.detail and "got 2" in v.detail
    check("[]", "incorrect_number_of_functions")
    check(json.dumps(one), None)  # near miss: a single object instead of a list is still one call


def test_incorrect_function_name():
    v = check(call().replace("weather.get", "news.search"), "incorrect_function_name")
    assert "'news.search'" in v.detail and "'weather.get'" in v.detail
    check(call().replace("weather.get", "weather_get"), "incorrect_function_name")  # names compare exactly
    check(call().replace("weather.get", "Weather.get"), "incorrect_function_name")
    check(call(), None)


def test_missing_required_parameter():
    v = check(call(days=DROP), "missing_required_parameter")
    assert "'days'" in v.detail
    # a renamed required parameter is reported as missing (BFCL checks required first)
    check(call(days=DROP, num_days=3), "missing_required_parameter")
    check(call(), None)


def test_missing_optional_parameter():
    v = check(call(detailed=DROP), "missing_optional_parameter")
    assert "'detailed'" in v.detail
    # near miss: optional parameters whose acceptable list has "" may be omitted
    check(call(), None)  # unit, threshold, hours, point, filters all omitted


def test_unexpected_parameter():
    v = check(call(extra="x"), "unexpected_parameter")  # in the schema, not in the reference
    assert "'extra'" in v.detail and "reference leaves out" in v.detail
    v = check(call(country="US"), "unexpected_parameter")  # not in the schema at all
    assert "not in the tool's schema" in v.detail
    check(call(unit="celsius"), None)  # near miss: optional parameter the reference lists


def test_incorrect_parameter_type():
    check(call(days="3"), "incorrect_parameter_type")  # number as string
    check(call(days=3.0), "incorrect_parameter_type")  # float for integer (BFCL: type error)
    check(call(days=True), "incorrect_parameter_type")  # bool is not an integer
    check(call(detailed="true"), "incorrect_parameter_type")
    check(call(threshold="2.5"), "incorrect_parameter_type")
    check(call(hours="9, 12"), "incorrect_parameter_type")  # list as string
    check(call(hours=[9, "12"]), "incorrect_parameter_type")  # element type
    check(call(city=["NYC"]), "incorrect_parameter_type")
    v = check(call(filters="rain"), "incorrect_parameter_type")
    assert "expected type object" in v.detail
    # near misses
    check(call(threshold=2.5), None)
    check(call(hours=[9, 12]), None)


def test_incorrect_parameter_value():
    v = check(call(city="Boston"), "incorrect_parameter_value")
    assert "'city'" in v.detail and "Boston" in v.detail and "NYC" in v.detail
    check(call(days=4), "incorrect_parameter_value")
    check(call(detailed=False), "incorrect_parameter_value")
    check(call(hours=[12, 9]), "incorrect_parameter_value")  # lists are ordered
    check(call(hours=[9]), "incorrect_parameter_value")
    check(call(unit="kelvin"), "incorrect_parameter_value")
    check(call(filters={"kind": "snow"}), "incorrect_parameter_value")
    check(call(filters={"kind": "rain", "color": "red"}), "incorrect_parameter_value")  # unknown dict key
    check(call(filters={"area": "north"}), "incorrect_parameter_value")  # required dict key missing
    check(call(city="NYC"), None)  # near miss: the other acceptable value


# --- BFCL's normalisations ---------------------------------------------------------------------


@pytest.mark.parametrize("city", ["new york, ny", "New York NY", "NEW-YORK,NY", "new_york.ny", "nyc", " N.Y.C. "])
def test_string_normalisation(city):
    check(call(city=city), None)


def test_standardize_string_matches_bfcl():
    assert standardize_string("April 1, 2024") == standardize_string("april 1 2024") == "april12024"
    assert standardize_string("it's") == 'it"s'
    assert standardize_string("a*b^c/d") == "abcd"


def test_int_accepted_for_float_and_numeric_equality():
    check(call(threshold=2.5), None)
    ref = reference_from_bfcl([{"weather.get": {"city": ["new york ny"], "days": [3], "threshold": [2.0]}}])
    assert verify(call(threshold=2, detailed=DROP), ref, TOOLS).correct  # int for float
    assert verify(call(threshold=2.0, detailed=DROP), ref, TOOLS).correct
    assert verify(call(point=[1, 2], detailed=DROP), reference_from_bfcl(
        [{"weather.get": {"city": ["new york ny"], "days": [3], "point": [[1.0, 2.0]]}}]), TOOLS).correct


def test_tuple_params_accept_lists_and_python_tuples():
    check(call(point=[1.5, 2.0]), None)
    check("[weather.get(city='NYC', days=3, detailed=True, point=(1.5, 2.0))]", None)


def test_list_elements_normalised():
    tools = normalize_tools([{"name": "f", "parameters": {"type": "dict", "properties": {
        "names": {"type": "array", "items": {"type": "string"}}}, "required": ["names"]}}])
    ref = reference_from_bfcl([{"f": {"names": [["The Office", "Stranger Things"], ["Stranger Things", "The Office"]]}}])
    assert verify('[f(names=["the office", "stranger-things"])]', ref, tools).correct
    assert verify('[f(names=["Stranger Things", "The Office"])]', ref, tools).correct  # second acceptable order
    assert verify('[f(names=["The Office"])]', ref, tools).error_type == "incorrect_parameter_value"


def test_list_of_dicts_and_nested_dicts():
    tools = normalize_tools([{"name": "order", "parameters": {"type": "dict", "properties": {
        "items": {"type": "array", "items": {"type": "dict"}}}, "required": ["items"]}}])
    ref = reference_from_bfcl([{"order": {"items": [[{"item": ["burgers"], "quantity": [5]},
                                                     {"item": ["chicken wings"], "quantity": [6]}]]}}])
    good = [ToolCall("order", {"items": [{"item": "Burgers", "quantity": 5}, {"item": "chicken wings", "quantity": 6}]})]
    assert verify_calls(good, ref, tools).correct
    bad = [ToolCall("order", {"items": [{"item": "burgers", "quantity": 6}, {"item": "chicken wings", "quantity": 5}]})]
    assert verify_calls(bad, ref, tools).error_type == "incorrect_parameter_value"


def test_variable_rule_reference_type_wins_over_schema():
    # BFCL: when the answer's type disagrees with the schema (a variable name for an int), it is accepted.
    ref = reference_from_bfcl([{"weather.get": {"city": ["new york ny"], "days": ["num_days"]}}])
    assert verify(call(days="num_days", detailed=DROP), ref, TOOLS).correct
    assert verify(call(days=3, detailed=DROP), ref, TOOLS).error_type == "incorrect_parameter_value"


def test_untyped_any_param_accepts_any_type():
    ref = reference_from_bfcl([{"weather.get": {"city": ["new york ny"], "days": [3], "extra": [[1, 2]]}}])
    assert verify(call(extra=[1, 2], detailed=DROP), ref, TOOLS).correct


def test_reference_wins_over_schema_on_omission_and_extra_params():
    # schema-required but the reference allows omission -> fine (BFCL would say missing_required)
    ref = reference_from_bfcl([{"weather.get": {"city": ["new york ny"], "days": ["", 3]}}])
    assert verify(call(days=DROP, detailed=DROP), ref, TOOLS).correct
    # a parameter the reference lists but the schema lacks -> fine (BFCL would say unexpected)
    ref = reference_from_bfcl([{"weather.get": {"city": ["new york ny"], "days": [3], "lang": ["en"]}}])
    assert verify(call(lang="en", detailed=DROP), ref, TOOLS).correct
    # empty acceptable list: absent or empty
    ref = reference_from_bfcl([{"weather.get": {"city": ["new york ny"], "days": [3], "hours": []}}])
    assert verify(call(detailed=DROP), ref, TOOLS).correct
    assert verify(call(hours=[], detailed=DROP), ref, TOOLS).correct
    assert verify(call(hours=[9], detailed=DROP), ref, TOOLS).error_type == "incorrect_parameter_value"


# --- parallel / multiple calls ------------------------------------------------------------------

PAR_REF = reference_from_bfcl([
    {"weather.get": {"city": ["Paris"], "days": [1]}},
    {"weather.get": {"city": ["Rome"], "days": [2]}},
    {"news.search": {"topic": ["rain"], "limit": [5, ""]}},
])


def pcalls(*specs):
    return [ToolCall(n, a) for n, a in specs]


def test_parallel_order_insensitive():
    a = ("weather.get", {"city": "Paris", "days": 1})
    b = ("weather.get", {"city": "Rome", "days": 2})
    c = ("news.search", {"topic": "rain"})
    import itertools

    for perm in itertools.permutations([a, b, c]):
        assert verify_calls(pcalls(*perm), PAR_REF, TOOLS).correct
    text = "[news.search(topic='rain', limit=5), weather.get(days=2, city='rome'), weather.get(city='paris', days=1)]"
    assert verify(text, PAR_REF, TOOLS).correct


def test_parallel_swapped_values_report_value_error_not_name():
    bad = pcalls(("weather.get", {"city": "Paris", "days": 2}), ("weather.get", {"city": "Rome", "days": 1}),
                 ("news.search", {"topic": "rain"}))
    v = verify_calls(bad, PAR_REF, TOOLS)
    assert v.error_type == "incorrect_parameter_value" and "days" in v.detail
    assert "other problem" in v.detail


def test_parallel_wrong_name_and_count():
    bad = pcalls(("weather.get", {"city": "Paris", "days": 1}), ("weather.get", {"city": "Rome", "days": 2}),
                 ("news.get", {"topic": "rain"}))
    assert verify_calls(bad, PAR_REF, TOOLS).error_type == "incorrect_function_name"
    assert verify_calls(bad[:2], PAR_REF, TOOLS).error_type == "incorrect_number_of_functions"


def test_exact_matching_beats_greedy():
    # Call 0 fits both references; greedy (BFCL) gives it to reference 0 and then fails; a matching succeeds.
    tools = normalize_tools([{"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}},
                                                            "required": ["x"]}}])
    ref = reference_from_bfcl([{"f": {"x": [1, 2]}}, {"f": {"x": [1]}}])
    assert verify_calls(pcalls(("f", {"x": 1}), ("f", {"x": 2})), ref, tools).correct
    assert verify_calls(pcalls(("f", {"x": 2}), ("f", {"x": 2})), ref, tools).error_type == "incorrect_parameter_value"


def test_precedence_within_a_call_is_deterministic():
    # unexpected + wrong value + missing optional: unexpected_parameter wins
    v = check(call(country="US", city="Boston", detailed=DROP), "unexpected_parameter")
    assert "other problem" in v.detail
    check(call(city="Boston", detailed=DROP), "incorrect_parameter_value")
    check(call(days="3", city="Boston"), "incorrect_parameter_type")
    check(call(days=DROP, country="US"), "missing_required_parameter")


def test_bad_reference_or_tools_raise_schema_error():
    with pytest.raises(SchemaError):
        verify("[]", "not json", TOOLS)
    with pytest.raises(SchemaError):
        verify("[]", REF, [{"no_name": 1}])


def test_reference_without_tool_schema_still_verifies():
    ref = [ReferenceCall("g", {"a": ["x"]})]
    assert verify("[g(a='X')]", ref, []).correct
    assert verify("[g(a=1)]", ref, []).error_type == "incorrect_parameter_value"  # no schema: no type error
    assert verify("[g()]", ref, []).error_type == "missing_optional_parameter"


# --- canonical_key / first_acceptable_calls -----------------------------------------------------


def test_canonical_key_order_and_value_insensitive():
    a = [ToolCall("f", {"x": 1.0, "s": "New York"}), ToolCall("g", {})]
    b = [ToolCall("g", {}), ToolCall("f", {"s": "new york", "x": 1})]
    assert canonical_key(a) == canonical_key(b)
    assert canonical_key(a) == canonical_key("[g(), f(s='NEW YORK', x=1)]")
    assert canonical_key(a) != canonical_key([ToolCall("f", {"x": 2, "s": "New York"}), ToolCall("g", {})])
    assert canonical_key([ToolCall("f", {"x": True})]) != canonical_key([ToolCall("f", {"x": 1})])
    assert canonical_key("not a call").startswith("unparseable:")


def test_first_acceptable_calls_unwraps_nested_dicts():
    calls = first_acceptable_calls(REF)
    assert calls == [ToolCall("weather.get", {"city": "New York, NY", "days": 3, "unit": "celsius", "detailed": True, "threshold": 2.5,
                                              "hours": [9, 12], "point": [1.5, 2.0], "filters": {"kind": "rain"}})]
    assert verify_calls(calls, REF, TOOLS).correct


def test_no_call_expected():
    assert verify("I cannot help with that, no tool fits.", [], TOOLS).correct
    assert verify("", [], TOOLS).correct
    assert verify("[]", [], TOOLS).correct
    assert verify(call(), [], TOOLS).error_type == "incorrect_number_of_functions"
    assert verify(call()[:-3], [], TOOLS).error_type == "incorrect_output_format"  # a broken call is still a call
