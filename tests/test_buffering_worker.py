"""The worker's framing scan: when a request has fully arrived, and what it refuses."""

import threading

import pytest

from app.buffering_worker import Incomplete, Refused, problem_bytes, request_end

HEAD = b"POST /webhooks/inbound HTTP/1.1\r\nHost: x\r\n"


def test_a_request_without_a_body_ends_with_its_head():
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    assert request_end(request + b"GET /next") == len(request)


def test_a_body_of_declared_length_must_arrive_whole():
    request = HEAD + b"Content-Length: 5\r\n\r\nhello"
    assert request_end(request) == len(request)
    with pytest.raises(Incomplete):
        request_end(request[:-1])


def test_a_dribbled_head_is_incomplete_until_its_blank_line():
    with pytest.raises(Incomplete):
        request_end(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")


def test_a_declared_body_over_64_kib_is_refused_before_it_arrives():
    with pytest.raises(Refused) as refusal:
        request_end(HEAD + b"Content-Length: 65537\r\n\r\n")
    assert refusal.value.status == 413


def test_chunked_bodies_are_complete_at_the_last_chunk_and_refused_over_64_kib():
    body = b"5\r\nhello\r\n0\r\n\r\n"
    request = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body
    assert request_end(request) == len(request)
    with pytest.raises(Incomplete):
        request_end(request[:-2])
    big = b"".join(b"8000\r\n" + b"x" * 0x8000 + b"\r\n" for _ in range(3))
    with pytest.raises(Refused) as refusal:
        request_end(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + big)
    assert refusal.value.status == 413


def test_an_endless_head_is_refused():
    with pytest.raises(Refused) as refusal:
        request_end(b"GET / HTTP/1.1\r\nX: " + b"a" * (64 * 1024 + 1))
    assert refusal.value.status == 431


def test_framing_it_cannot_read_is_left_to_gunicorn_to_refuse():
    request = HEAD + b"Content-Length: five\r\n\r\n"
    assert request_end(request) == len(request)


def test_refusals_are_problem_json():
    answer = problem_bytes(408, "Request Timeout", "too slow")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Content-Type: application/problem+json\r\n" in answer
    assert answer.endswith(b'"status": 408, "detail": "too slow"}')


def _request_end_within(request: bytes, seconds: float = 10.0):
    """`request_end(request)` in a thread, so a scan that loops forever fails the
    test instead of hanging it. Returns the result or the exception raised."""
    outcome: list = []

    def scan() -> None:
        try:
            outcome.append(request_end(request))
        except Exception as error:  # noqa: BLE001 - handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "request_end never returned"
    return outcome[0]


CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("size", [b"-6", b"-1", b"-0x10"])
def test_a_negative_chunk_size_is_refused_and_does_not_loop(size):
    outcome = _request_end_within(CHUNKED + size + b"\r\n")
    assert isinstance(outcome, Refused)
    assert outcome.status == 400


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5" * 2000,
    ],
    ids=["zz", "plus", "0x", "underscore", "space", "empty", "17-digits", "no-crlf", "no-line"],
)
def test_a_malformed_chunked_body_is_refused_400(body):
    outcome = _request_end_within(CHUNKED + body)
    assert isinstance(outcome, Refused)
    assert (outcome.status, outcome.detail) == (400, "malformed chunked body")


def test_chunk_sizes_with_extensions_and_upper_case_hex_are_read():
    request = CHUNKED + b"A;name=value\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n"
    assert _request_end_within(request) == len(request)


def test_a_content_length_of_thousands_of_digits_is_refused_not_a_crash():
    """Python refuses to read over 4 300 digits as a number: that ValueError escaped the
    worker's event loop and ended the worker with every request it held."""
    from app.buffering_worker import Refused, request_end

    head = b"POST /webhooks/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000
    with pytest.raises(Refused) as refused:
        request_end(head + b"\r\n\r\n")
    assert refused.value.status == 413
