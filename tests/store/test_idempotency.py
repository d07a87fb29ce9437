"""app/store/idempotency.py on a real database: Idempotency-Key claims and replays."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.store import idempotency
from app.store.dialect import utcnow

OWNER = "owner-a"
HASH = "hash-1"
# A hold already over when it is taken: a request that stopped without a trace.
LAPSED = timedelta(seconds=-1)


def keys(connection) -> list[tuple]:
    table = idempotency.idempotency_keys
    query = select(table.c.owner, table.c.key, table.c.response_status, table.c.message_id)
    return connection.execute(query.order_by(table.c.owner, table.c.key)).all()


def claim(connection, key="k", *, owner=OWNER, request_hash=HASH, hold=timedelta(minutes=1)):
    return idempotency.claim_idempotency_key(connection, owner, key, request_hash, hold)


def test_the_first_claim_owns_the_key_until_its_hold_ends(connection):
    before = utcnow()

    assert claim(connection, hold=timedelta(minutes=5)) is None

    replay = claim(connection)
    assert replay is not None
    assert (replay.request_hash, replay.response_status, replay.response_body) == (HASH, None, None)
    hold = timedelta(minutes=5)
    assert before + hold <= replay.in_flight_until <= utcnow() + hold
    assert replay.abandoned(utcnow()) is False
    assert keys(connection) == [(OWNER, "k", None, None)]


def test_keys_are_scoped_per_owner(connection):
    assert claim(connection, owner="owner-a") is None
    assert claim(connection, owner="owner-b") is None

    assert keys(connection) == [("owner-a", "k", None, None), ("owner-b", "k", None, None)]


def test_a_completed_key_replays_its_answer(connection):
    claim(connection)
    idempotency.complete_idempotency_key(connection, OWNER, "k", 202, '{"id": "m1"}')

    replay = claim(connection)

    assert (replay.response_status, replay.response_body) == (202, '{"id": "m1"}')
    assert replay.abandoned(utcnow() + timedelta(days=1)) is False


def test_a_repeat_with_another_body_is_told_the_first_hash(connection):
    claim(connection)

    replay = claim(connection, request_hash="hash-2")

    assert replay.request_hash == HASH


def test_a_released_key_can_be_claimed_again(connection):
    claim(connection)

    idempotency.release_idempotency_key(connection, OWNER, "k")

    assert keys(connection) == []
    assert claim(connection) is None


def test_release_keeps_a_completed_key(connection):
    claim(connection)
    idempotency.complete_idempotency_key(connection, OWNER, "k", 422, "{}")

    idempotency.release_idempotency_key(connection, OWNER, "k")

    assert keys(connection) == [(OWNER, "k", 422, None)]
    assert claim(connection).response_status == 422


def test_a_lapsed_claim_that_created_nothing_is_taken_over(connection):
    claim(connection, hold=LAPSED)

    assert claim(connection) is None
    # Taken over with a fresh hold: a third request waits for it.
    assert claim(connection).in_flight_until > utcnow()


def test_a_lapsed_claim_is_not_taken_over_by_another_body(connection):
    claim(connection, hold=LAPSED)

    replay = claim(connection, request_hash="hash-2")

    assert replay.request_hash == HASH
    assert replay.abandoned(utcnow()) is True


def test_a_lapsed_claim_that_created_a_message_is_never_taken_over(connection):
    claim(connection)
    assert idempotency.link_idempotency_key(connection, OWNER, "k", "m1") is True
    table = idempotency.idempotency_keys
    connection.execute(update(table).values(in_flight_until=utcnow() + LAPSED))

    replay = claim(connection)

    assert replay.message_id == "m1"
    assert replay.abandoned(utcnow()) is True


def test_link_refuses_a_lapsed_or_already_linked_claim(connection):
    claim(connection, "lapsed", hold=LAPSED)
    claim(connection, "live")

    assert idempotency.link_idempotency_key(connection, OWNER, "lapsed", "m1") is False
    assert idempotency.link_idempotency_key(connection, OWNER, "live", "m2") is True
    assert idempotency.link_idempotency_key(connection, OWNER, "live", "m3") is False
    assert keys(connection) == [(OWNER, "lapsed", None, None), (OWNER, "live", None, "m2")]


def test_keys_expire_after_a_day(connection):
    claim(connection, "old")
    idempotency.complete_idempotency_key(connection, OWNER, "old", 202, "{}")
    table = idempotency.idempotency_keys
    connection.execute(
        update(table)
        .where(table.c.key == "old")
        .values(created_at=utcnow() - idempotency.IDEMPOTENCY_TTL - timedelta(seconds=1))
    )
    claim(connection, "recent")

    assert keys(connection) == [(OWNER, "recent", None, None)]
    assert claim(connection, "old") is None


def test_purge_counts_what_it_removes(connection):
    claim(connection, "a")
    claim(connection, "b")
    in_a_day = utcnow() + idempotency.IDEMPOTENCY_TTL
    purge = idempotency.purge_expired_idempotency_keys

    assert purge(connection, in_a_day - timedelta(hours=1)) == 0
    assert purge(connection, in_a_day + timedelta(seconds=1)) == 2
    assert keys(connection) == []
