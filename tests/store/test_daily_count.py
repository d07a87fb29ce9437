"""app/store/daily_count.py on a real database: the SEND_SMS_DAILY_LIMIT counter."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.store import daily_count

DAY = date(2026, 11, 27)
NEXT_DAY = date(2026, 11, 28)


def counts(connection) -> dict[date, int]:
    table = daily_count.daily_send_counts
    return dict(connection.execute(select(table.c.day, table.c.count)).all())


def test_slots_are_taken_up_to_the_limit_and_no_further(connection):
    taken = [daily_count.take_daily_slot(connection, DAY, 3) for _ in range(5)]

    assert taken == [True, True, True, False, False]
    assert counts(connection) == {DAY: 3}


def test_a_slot_given_back_can_be_taken_again(connection):
    daily_count.take_daily_slot(connection, DAY, 2)
    daily_count.take_daily_slot(connection, DAY, 2)

    daily_count.give_back_daily_slot(connection, DAY)

    assert counts(connection) == {DAY: 1}
    assert daily_count.take_daily_slot(connection, DAY, 2) is True
    assert daily_count.take_daily_slot(connection, DAY, 2) is False
    assert counts(connection) == {DAY: 2}


def test_giving_back_never_goes_below_zero_nor_makes_a_row(connection):
    daily_count.take_daily_slot(connection, DAY, 5)
    daily_count.give_back_daily_slot(connection, DAY)
    daily_count.give_back_daily_slot(connection, DAY)
    daily_count.give_back_daily_slot(connection, NEXT_DAY)

    assert counts(connection) == {DAY: 0}


def test_each_utc_day_has_its_own_count(connection):
    daily_count.take_daily_slot(connection, DAY, 1)
    assert daily_count.take_daily_slot(connection, DAY, 1) is False

    assert daily_count.take_daily_slot(connection, NEXT_DAY, 1) is True
    assert counts(connection) == {DAY: 1, NEXT_DAY: 1}


def test_a_lowered_limit_refuses_a_day_already_past_it(connection):
    for _ in range(3):
        daily_count.take_daily_slot(connection, DAY, 10)

    assert daily_count.take_daily_slot(connection, DAY, 2) is False
    assert counts(connection) == {DAY: 3}
