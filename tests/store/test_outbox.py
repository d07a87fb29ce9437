"""app/store/outbox.py on a real database: events queued for subscriptions, and
the dispatcher's lease on a subscription's lane."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.store import outbox

NOW = datetime(2026, 11, 27, 10, 0, 0)
LEASE = NOW + timedelta(seconds=30)


def subscription(connection, subscription_id: str, owner: str = "owner-a") -> str:
    outbox.insert_subscription(
        connection,
        {
            "id": subscription_id,
            "owner": owner,
            "url": f"https://receiver.example/{subscription_id}",
            "event_types": ["*"],
            "scope": "own",
            "secret": "s" * 32,
            "created_at": NOW,
        },
    )
    return subscription_id


def enqueue(connection, event_id: str, subscription_ids: list[str], at: datetime = NOW) -> None:
    outbox.insert_event(
        connection,
        {
            "id": event_id,
            "owner": "owner-a",
            "type": "message.sent",
            "body": "{}",
            "created_at": at,
        },
    )
    outbox.insert_deliveries(
        connection, [outbox.new_delivery(event_id, sid, at) for sid in subscription_ids]
    )


def delivery_states(connection) -> list[tuple]:
    table = outbox.deliveries
    query = select(table.c.event_id, table.c.status, table.c.locked_by)
    return connection.execute(query.order_by(table.c.event_id)).all()


def test_an_event_queues_one_pending_delivery_per_subscription(connection):
    subscription(connection, "sub-1")
    subscription(connection, "sub-2")

    enqueue(connection, "evt_1", ["sub-1", "sub-2"])

    found = outbox.deliveries_of(connection, ["evt_1"])["evt_1"]
    assert {(d["subscription_id"], d["status"], d["attempts"]) for d in found} == {
        ("sub-1", "pending", 0),
        ("sub-2", "pending", 0),
    }
    assert outbox.event_state(found) == "pending"
    assert outbox.backlog(connection) == outbox.Backlog(pending=2, failed=0, oldest_pending=NOW)


def test_a_claim_leases_due_deliveries_oldest_first_up_to_the_batch(connection):
    subscription(connection, "sub-1")
    enqueue(connection, "evt_2", ["sub-1"], NOW - timedelta(seconds=1))
    enqueue(connection, "evt_1", ["sub-1"], NOW - timedelta(seconds=2))
    enqueue(connection, "evt_3", ["sub-1"], NOW - timedelta(seconds=0))
    enqueue(connection, "evt_later", ["sub-1"], NOW + timedelta(minutes=1))

    assert outbox.lanes_with_work(connection, NOW, exclude=set()) == ["sub-1"]
    lane = outbox.claim_lane(connection, "sub-1", "token-a", NOW, LEASE, batch=2)

    assert lane.subscription["id"] == "sub-1"
    assert [d["event_id"] for d in lane.deliveries] == ["evt_1", "evt_2"]
    assert delivery_states(connection) == [
        ("evt_1", "pending", "token-a"),
        ("evt_2", "pending", "token-a"),
        ("evt_3", "pending", None),
        ("evt_later", "pending", None),
    ]


def test_a_lane_in_flight_is_not_claimed_again_until_its_lease_ends(connection):
    subscription(connection, "sub-1")
    enqueue(connection, "evt_1", ["sub-1"])
    enqueue(connection, "evt_2", ["sub-1"])
    outbox.claim_lane(connection, "sub-1", "token-a", NOW, LEASE, batch=1)

    assert outbox.lanes_with_work(connection, NOW, exclude=set()) == []
    assert outbox.claim_lane(connection, "sub-1", "token-b", NOW, LEASE, batch=1) is None

    later = LEASE + timedelta(seconds=1)
    lane = outbox.claim_lane(
        connection, "sub-1", "token-b", later, later + timedelta(seconds=30), batch=5
    )
    assert [d["event_id"] for d in lane.deliveries] == ["evt_1", "evt_2"]


def test_lanes_skip_disabled_and_excluded_subscriptions(connection):
    for sid in ("sub-1", "sub-2", "sub-3"):
        subscription(connection, sid)
        enqueue(connection, f"evt_{sid}", [sid])
    outbox.disable_subscription(connection, "sub-3", "gone", NOW)

    assert outbox.lanes_with_work(connection, NOW, exclude={"sub-2"}) == ["sub-1"]
    assert outbox.claim_lane(connection, "sub-3", "token-a", NOW, LEASE, batch=1) is None


def test_outcomes_are_recorded_only_under_the_lease_that_holds_them(connection):
    subscription(connection, "sub-1")
    enqueue(connection, "evt_1", ["sub-1"])
    enqueue(connection, "evt_2", ["sub-1"])
    lane = outbox.claim_lane(connection, "sub-1", "token-a", NOW, LEASE, batch=2)
    first, second = (d["id"] for d in lane.deliveries)
    delivered = {"status": "delivered", "attempts": 1, "delivered_at": NOW}

    assert outbox.settle_many(connection, "token-b", [{"id": first, **delivered}]) == 0
    assert outbox.settle_many(connection, "token-a", [{"id": first, **delivered}]) == 1
    outbox.release(connection, "token-a", [second])

    assert delivery_states(connection) == [
        ("evt_1", "delivered", None),
        ("evt_2", "pending", None),
    ]
    assert outbox.backlog(connection).pending == 1


def test_failed_deliveries_are_counted_and_can_be_queued_again(connection):
    subscription(connection, "sub-1")
    enqueue(connection, "evt_1", ["sub-1"])
    table = outbox.deliveries
    connection.execute(update(table).values(status="failed", attempts=8))

    assert outbox.backlog(connection) == outbox.Backlog(pending=0, failed=1, oldest_pending=None)
    assert [d["event_id"] for d in outbox.failed_deliveries(connection, None, 10)] == ["evt_1"]

    requeued = outbox.replay_range(
        connection, NOW - timedelta(hours=1), NOW + timedelta(hours=1), NOW, only_failed=True
    )

    assert requeued == 1
    assert delivery_states(connection) == [("evt_1", "pending", None)]
