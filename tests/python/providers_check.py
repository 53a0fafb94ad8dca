"""The official `openai` Python client against llmux in front of one provider's mock.

Usage: python providers_check.py BASE_URL API_KEY MODEL features|errors
`features`: plain, streamed, tool-call round trip, vision input, JSON mode.
`errors`: the calls meet upstream faults queued by the Rust test driving this script, in
this order: context window (400), auth (401), permission (403), not found (404), rate
limit (429), server error (500), overloaded (503/529).
"""

import json
import sys

import openai
from openai import OpenAI

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def features(client, model):
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello provider"}],
        max_tokens=64,
    )
    expect(r.choices[0].message.content == "hello provider", f"{model}: plain chat echoes")
    expect(r.choices[0].finish_reason == "stop", f"{model}: finish_reason stop")
    expect(r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, f"{model}: usage")

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=64,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expect(text == "stream these words please", f"{model}: stream reassembles")
    expect(chunks[-1].usage is not None, f"{model}: final usage chunk")

    messages = [{"role": "user", "content": "call tool weather in Paris"}]
    r = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER], max_tokens=64)
    calls = r.choices[0].message.tool_calls
    expect(calls and calls[0].function.name == "get_weather", f"{model}: tool call")
    expect(r.choices[0].finish_reason == "tool_calls", f"{model}: finish_reason tool_calls")
    json.loads(calls[0].function.arguments)
    messages.append(r.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "18C and sunny"})
    messages.append({"role": "user", "content": "thanks"})
    r = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER], max_tokens=64)
    expect(r.choices[0].message.content == "thanks", f"{model}: tool round trip answered")

    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "call tool weather in Rome"}],
        tools=[WEATHER], stream=True, max_tokens=64,
    )
    args, name = "", None
    for c in stream:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    expect(name == "get_weather" and json.loads(args) is not None, f"{model}: streamed tool call")

    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": PNG}},
        ]}],
        max_tokens=64,
    )
    expect(r.choices[0].message.content is not None, f"{model}: vision input accepted")

    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "give json"}],
        response_format={"type": "json_object"},
        max_tokens=64,
    )
    expect(r.choices[0].message.content is not None, f"{model}: JSON mode accepted")


def errors(client, model):
    cases = [
        (openai.BadRequestError, 400, "context_length_exceeded"),
        (openai.AuthenticationError, 401, None),
        (openai.PermissionDeniedError, 403, None),
        (openai.NotFoundError, 404, None),
        (openai.RateLimitError, 429, None),
        (openai.InternalServerError, 502, None),
        (openai.InternalServerError, 503, None),
    ]
    for exc, status, code in cases:
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], max_tokens=8)
            expect(False, f"{model}: expected {exc.__name__}")
        except exc as err:
            expect(err.status_code == status, f"{model}: {exc.__name__} with status {status}")
            if code:
                expect(err.code == code, f"{model}: code {code}")


def main():
    base, key, model, mode = sys.argv[1:5]
    client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=20)
    {"features": features, "errors": errors}[mode](client, model)
    print(f"{model} {mode}: all passed")


if __name__ == "__main__":
    main()
