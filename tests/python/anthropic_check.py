"""The official `anthropic` Python client against llmux's `/v1/messages`, with a
non-Anthropic model behind it.

Usage: python anthropic_check.py BASE_URL API_KEY MODEL features|errors
`features`: a plain message, a streamed one (`client.messages.stream`), a tool-use round
trip (plain and streamed).
`errors`: an unknown model (404), a wrong key (401), and an upstream rate limit (429) that
the Rust test driving this script queues on the mock before running it.
"""

import sys

import anthropic
from anthropic import Anthropic

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def features(client, model):
    msg = client.messages.create(
        model=model,
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "hello from anthropic"}],
    )
    expect(msg.type == "message" and msg.role == "assistant", "a message object")
    expect(msg.id.startswith("msg_"), f"an Anthropic message id ({msg.id})")
    expect(msg.model == model, "the requested model name")
    expect(msg.content[0].type == "text", "a text block")
    expect(msg.content[0].text == "hello from anthropic", "the mock's echo")
    expect(msg.stop_reason == "end_turn", "stop_reason end_turn")
    expect(msg.usage.input_tokens > 0 and msg.usage.output_tokens == 3, "usage")

    with client.messages.stream(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "one two three four five"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    expect(len(pieces) > 1, f"text arrives in pieces ({pieces})")
    expect("".join(pieces) == "one two three four five", "the streamed text")
    expect(final.content[0].text == "one two three four five", "the final message")
    expect(final.stop_reason == "end_turn", "streamed stop_reason end_turn")
    expect(final.usage.output_tokens == 5, "streamed usage")

    question = {"role": "user", "content": "call tool weather in Paris"}
    msg = client.messages.create(
        model=model, max_tokens=64, tools=[WEATHER], messages=[question]
    )
    expect(msg.stop_reason == "tool_use", "stop_reason tool_use")
    call = next(b for b in msg.content if b.type == "tool_use")
    expect(call.name == "get_weather", "the tool's name")
    expect(call.input == {"query": "weather in Paris"}, f"parsed input ({call.input})")

    with client.messages.stream(
        model=model, max_tokens=64, tools=[WEATHER], messages=[question]
    ) as stream:
        final = stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    expect(final.stop_reason == "tool_use", "streamed stop_reason tool_use")
    expect(streamed.input == {"query": "weather in Paris"}, "streamed input assembled")

    answer = client.messages.create(
        model=model,
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"},
                    {"type": "text", "text": "thanks, summarise"},
                ],
            },
        ],
    )
    expect(answer.stop_reason == "end_turn", "the turn after the tool result ends")
    expect(answer.content[0].text == "thanks, summarise", "answer after the tool result")


def errors(client, base, model):
    try:
        client.messages.create(
            model="no-such-model",
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
        )
        expect(False, "an unknown model fails")
    except anthropic.NotFoundError as e:
        expect(e.status_code == 404, "NotFoundError 404")
        expect(e.body["error"]["type"] == "not_found_error", f"error body ({e.body})")

    bad = Anthropic(base_url=base, api_key="sk-wrong", max_retries=0, timeout=20)
    try:
        bad.messages.create(
            model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
        expect(False, "a wrong key fails")
    except anthropic.AuthenticationError as e:
        expect(e.status_code == 401, "AuthenticationError 401")

    try:
        client.messages.create(
            model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
        expect(False, "the queued upstream rate limit fails the call")
    except anthropic.RateLimitError as e:
        expect(e.status_code == 429, "RateLimitError 429")
        expect(e.body["error"]["type"] == "rate_limit_error", f"error body ({e.body})")
        expect(e.response.headers.get("retry-after") == "3", "Retry-After passed on")


def main(base, key, model, mode):
    client = Anthropic(base_url=base, api_key=key, max_retries=0, timeout=20)
    if mode == "features":
        features(client, model)
    else:
        errors(client, base, model)


if __name__ == "__main__":
    main(*sys.argv[1:5])
