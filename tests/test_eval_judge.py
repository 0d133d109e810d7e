"""The LLM-as-judge's prompt and verdict helpers (`evaluate/judge.py`); no vLLM needed."""

import json
import math

import pytest

from fcrm_ray.evaluate import judge as J

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                         "required": ["city"]}},
         {"name": "get_time", "description": "Local time of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_judge_prompt_and_verdicts():
    msgs = J.judge_messages(json.dumps(TOOLS), json.dumps([{"role": "user", "content": "weather in Paris?"}]),
                            '[{"name": "get_weather", "arguments": {"city": "Paris"}}]')
    assert msgs[0]["role"] == "system" and "yes or no" in msgs[0]["content"]
    assert "get_time" in msgs[1]["content"] and "weather in Paris?" in msgs[1]["content"]
    assert '"city": "Paris"' in msgs[1]["content"]
    assert J.parse_verdict("Yes, it is right.") == 1.0
    assert J.parse_verdict("<think>yes? maybe</think>No.") == 0.0
    assert J.parse_verdict("The call is incorrect") == 0.0
    assert J.parse_verdict("unsure") is None
    assert J.verdict_score({" Yes": math.log(0.6), "No": math.log(0.2), "yes": math.log(0.1)}, "") == pytest.approx(0.7 / 0.9)
    assert J.verdict_score({"maybe": -0.1}, "no") == 0.0
    assert J.verdict_score(None, "hmm") == 0.5
