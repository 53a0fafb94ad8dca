"""The official `openai` Python client's Responses and legacy Completions calls against
llmux with a non-OpenAI model behind it.

Usage: python responses_check.py BASE_URL API_KEY MODEL OWNED_BY
Plain, streamed (raw events and the SDK's stream helper), a function-calling round trip
continued by previous_response_id (plain and streamed), retrieve and delete, errors, then
completions (plain and streamed) and models.retrieve. Exits non-zero on the first failed
expectation.
"""

import json
import sys

import openai
from openai import OpenAI

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def plain_and_streamed(client, model):
    r = client.responses.create(
        model=model, instructions="be brief", input="hello responses", max_output_tokens=64
    )
    expect(r.id.startswith("resp_") and r.object == "response", "a Response object")
    expect(r.status == "completed", "status completed")
    expect(r.output_text == "hello responses", "plain answer echoed")
    expect(r.instructions == "be brief", "instructions echoed")
    expect(r.usage.input_tokens > 0 and r.usage.output_tokens > 0, "usage")
    expect(r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, "usage total")
    got = client.responses.retrieve(r.id)
    expect(got.id == r.id and got.output_text == r.output_text, "retrieve the stored response")

    events = list(
        client.responses.create(
            model=model, input="stream these words please", stream=True, max_output_tokens=64
        )
    )
    types = [e.type for e in events]
    expect(types[:3] == ["response.created", "response.in_progress", "response.output_item.added"],
           f"stream opens in order: {types[:3]}")
    expect(types[-1] == "response.completed", "stream ends with response.completed")
    expect([e.sequence_number for e in events] == list(range(len(events))), "sequence numbers")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expect(text == "stream these words please", "stream deltas reassemble")
    done = [e for e in events if e.type == "response.output_text.done"]
    expect(len(done) == 1 and done[0].text == text, "output_text.done carries the text")
    final = events[-1].response
    expect(final.output_text == text and final.usage.output_tokens > 0, "completed response")

    with client.responses.stream(model=model, input="the helper works", max_output_tokens=64) as s:
        for _ in s:
            pass
        helper = s.get_final_response()
    expect(helper.output_text == "the helper works", "the SDK's stream helper")
    return r.id


def function_calling(client, model):
    r = client.responses.create(
        model=model, input="call tool weather in Paris", tools=[WEATHER], max_output_tokens=64
    )
    calls = [o for o in r.output if o.type == "function_call"]
    expect(len(calls) == 1 and calls[0].name == "get_weather", "a function_call item")
    args = json.loads(calls[0].arguments)
    expect(isinstance(args.get("query"), str), f"arguments are JSON: {args}")
    r2 = client.responses.create(
        model=model,
        previous_response_id=r.id,
        input=[
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C and sunny"},
            {"role": "user", "content": "thanks"},
        ],
        tools=[WEATHER],
        max_output_tokens=64,
    )
    expect(r2.previous_response_id == r.id, "previous_response_id echoed")
    expect(r2.output_text == "thanks", f"the round trip is answered: {r2.output_text!r}")

    events = list(
        client.responses.create(
            model=model, input="call tool weather in Rome", tools=[WEATHER], stream=True,
            max_output_tokens=64,
        )
    )
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    expect(len(done) == 1 and done[0].arguments == deltas, "streamed arguments reassemble")
    items = [e.item for e in events if e.type == "response.output_item.done"]
    expect(items and items[-1].type == "function_call", "the function_call item is done")
    r3 = client.responses.create(
        model=model,
        previous_response_id=events[-1].response.id,
        input=[{"type": "function_call_output", "call_id": items[-1].call_id, "output": "21C"},
               {"role": "user", "content": "merci"}],
        tools=[WEATHER],
        stream=True,
        max_output_tokens=64,
    )
    text = "".join(e.delta for e in r3 if e.type == "response.output_text.delta")
    expect(text == "merci", f"a streamed turn continues a streamed one: {text!r}")


def errors(client, model, stored_id):
    client.responses.delete(stored_id)
    try:
        client.responses.retrieve(stored_id)
        expect(False, "a deleted response is gone")
    except openai.NotFoundError:
        expect(True, "a deleted response is gone (404)")
    try:
        client.responses.create(model=model, input="x", previous_response_id=stored_id)
        expect(False, "an unknown previous_response_id is refused")
    except openai.BadRequestError as e:
        expect(e.code == "previous_response_not_found", "previous_response_not_found (400)")
    try:
        client.responses.create(model=model, input="x", tools=[{"type": "web_search"}])
        expect(False, "built-in tools are refused")
    except openai.BadRequestError as e:
        expect(e.param == "tools[0].type", "built-in tools are refused (400)")


def completions(client, model, owned_by):
    c = client.completions.create(model=model, prompt="legacy prompt works", max_tokens=64)
    expect(c.object == "text_completion", "a text_completion")
    expect(c.choices[0].text == "legacy prompt works", "completion text")
    expect(c.choices[0].finish_reason == "stop", "completion finish_reason")
    expect(c.usage.prompt_tokens > 0, "completion usage")
    chunks = list(
        client.completions.create(
            model=model, prompt="legacy stream works", max_tokens=64, stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    expect(text == "legacy stream works", "completion stream reassembles")
    expect(chunks[-1].usage is not None, "completion stream usage")
    try:
        client.completions.create(model=model, prompt="x", n=2)
        expect(False, "n=2 is refused")
    except openai.BadRequestError as e:
        expect(e.param == "n", "n=2 is refused (400)")

    m = client.models.retrieve(model)
    expect(m.id == model and m.owned_by == owned_by, f"models.retrieve: {m}")
    try:
        client.models.retrieve("no-such-model")
        expect(False, "an unknown model is 404")
    except openai.NotFoundError:
        expect(True, "an unknown model is 404")


def main() -> None:
    base, key, model, owned_by = sys.argv[1:5]
    client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=20)
    stored = plain_and_streamed(client, model)
    function_calling(client, model)
    errors(client, model, stored)
    completions(client, model, owned_by)


if __name__ == "__main__":
    main()
