"""The worker's framing scan: when a request has fully arrived, and what it refuses."""

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
