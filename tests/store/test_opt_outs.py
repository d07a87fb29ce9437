"""app/store/opt_outs.py on a real database: the list the send path refuses."""

from __future__ import annotations

from sqlalchemy import select

from app.store import opt_outs

NUMBER = "14155550100"
OTHER = "14155550101"


def stored(connection) -> list[tuple]:
    table = opt_outs.opt_outs
    return connection.execute(select(table.c.number, table.c.message_uuid)).all()


def test_opting_out_stores_the_number_once(connection):
    assert opt_outs.opt_out(connection, NUMBER, "uuid-1") is True
    assert opt_outs.opt_out(connection, NUMBER, "uuid-2") is False

    assert stored(connection) == [(NUMBER, "uuid-1")]


def test_only_the_opted_out_number_is_refused(connection):
    opt_outs.opt_out(connection, NUMBER, None)

    assert opt_outs.is_opted_out(connection, NUMBER) is True
    assert opt_outs.is_opted_out(connection, OTHER) is False


def test_opting_in_removes_the_number(connection):
    opt_outs.opt_out(connection, NUMBER, None)
    opt_outs.opt_out(connection, OTHER, None)

    assert opt_outs.opt_in(connection, NUMBER) is True

    assert opt_outs.is_opted_out(connection, NUMBER) is False
    assert stored(connection) == [(OTHER, None)]


def test_opting_in_a_number_never_opted_out_changes_nothing(connection):
    opt_outs.opt_out(connection, OTHER, None)

    assert opt_outs.opt_in(connection, NUMBER) is False
    assert stored(connection) == [(OTHER, None)]


def test_a_number_may_opt_out_again_after_opting_in(connection):
    opt_outs.opt_out(connection, NUMBER, "uuid-1")
    opt_outs.opt_in(connection, NUMBER)

    assert opt_outs.opt_out(connection, NUMBER, "uuid-3") is True
    assert stored(connection) == [(NUMBER, "uuid-3")]
