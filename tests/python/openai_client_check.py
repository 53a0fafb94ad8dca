"""Real-client check: the official `openai` Python package against a running llmux.

Usage: python openai_client_check.py BASE_URL API_KEY
Exits non-zero with a message on the first failed expectation.
"""

import sys

import openai
from openai import OpenAI


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def main() -> None:
    base, key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=20)

    # Plain chat.
    r = client.chat.completions.create(
        model="mock/echo",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello from the python client"},
        ],
    )
    expect(r.choices[0].message.content == "hello from the python client", "chat echoes")
    expect(r.choices[0].finish_reason == "stop", "finish_reason is stop")
    expect(r.usage is not None and r.usage.total_tokens > 0, "usage reported")

    raw = client.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "hdr"}]
    )
    expect(raw.headers.get("x-llmux-provider") == "mock", "x-llmux-provider header")
    expect(bool(raw.headers.get("x-request-id")), "x-request-id header")

    # Streaming, with and without usage.
    stream = client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "streamed words arrive in pieces"}],
        stream=True,
        extra_body={"mock_chunks": 6},
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    expect("".join(pieces) == "streamed words arrive in pieces", "stream reassembles")
    expect(len(pieces) >= 6, "stream came in chunks")

    stream = client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    expect(chunks[-1].usage is not None and chunks[-1].choices == [], "final usage chunk when asked")

    # Embeddings.
    e = client.embeddings.create(model="mock/echo", input=["one", "two"], dimensions=12)
    expect(len(e.data) == 2 and len(e.data[0].embedding) == 12, "embeddings")

    # Models.
    ids = [m.id for m in client.models.list()]
    expect("mock/echo" in ids, "models list")

    # Errors arrive as the SDK's typed exceptions.
    try:
        client.chat.completions.create(model="no/such-model", messages=[{"role": "user", "content": "x"}])
        expect(False, "unknown model raises")
    except openai.NotFoundError as err:
        expect(err.status_code == 404, "unknown model is a 404 NotFoundError")

    try:
        client.chat.completions.create(
            model="mock/echo",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"mock_response": "litellm.RateLimitError"},
        )
        expect(False, "forced rate limit raises")
    except openai.RateLimitError as err:
        expect(err.status_code == 429, "forced rate limit is a 429 RateLimitError")
        expect(err.response.headers.get("retry-after") is not None, "Retry-After on 429")

    bad = OpenAI(base_url=f"{base}/v1", api_key="sk-wrong", max_retries=0, timeout=20)
    try:
        bad.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "x"}])
        expect(False, "wrong key raises")
    except openai.AuthenticationError as err:
        expect(err.status_code == 401, "wrong key is a 401 AuthenticationError")

    print("python openai client check: all passed")


if __name__ == "__main__":
    main()
