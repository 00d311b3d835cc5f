"""Drives a running cocoon-agent with the official `openai` Python SDK.

    python openai_client_test.py BASE_URL MODEL_ID

Exits non-zero (an AssertionError or an SDK exception) on any mismatch; prints OK at the end.
"""

import sys

import openai
from openai import OpenAI


def check_usage(u, max_tokens):
    assert u is not None, "usage missing"
    assert u.prompt_tokens > 0, u
    assert 0 < u.completion_tokens <= max_tokens, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u


def main() -> None:
    base, model = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)

    assert [m.id for m in client.models.list().data] == [model]

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world"}]
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
    assert chat.object == "chat.completion"
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason in ("stop", "length")
    check_usage(chat.usage, 8)

    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == chat.choices[0].message.content, (text, chat.choices[0].message.content)
    assert finish == chat.choices[0].finish_reason
    assert usage.model_dump() == chat.usage.model_dump(), (usage, chat.usage)

    comp = client.completions.create(model=model, prompt="one two", max_tokens=5, temperature=0, stop=["\n\n"])
    assert comp.object == "text_completion"
    check_usage(comp.usage, 5)
    stream = client.completions.create(
        model=model, prompt="one two", max_tokens=5, temperature=0, stop=["\n\n"], stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            text += c.text
    assert text == comp.choices[0].text, (text, comp.choices[0].text)
    assert usage.model_dump() == comp.usage.model_dump()

    try:
        client.chat.completions.create(model=model, messages=messages, n=2)
        raise AssertionError("n=2 was accepted")
    except openai.BadRequestError as e:
        assert e.body["code"] == "invalid_value" and e.body["param"] == "n", e.body
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("unknown model was accepted")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    print("OK")


if __name__ == "__main__":
    main()
