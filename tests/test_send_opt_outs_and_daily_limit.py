"""POST /send-sms to an opted-out number or past the daily cap: refused before Vonage is called."""

from tests.support import MESSAGES_URL, TO, accepted, auth_headers, count_rows


def _refused_as_opted_out(app, response, vonage_api) -> None:
    assert response.status_code == 422
    assert response.json["type"].endswith("opted-out")
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


def test_opted_out_recipient_is_refused(app, send, vonage_api):
    from app.store import opt_outs

    with app.extensions["db"].begin() as connection:
        opt_outs.opt_out(connection, "14155550100", None)

    response = send({"to": TO, "text": "Hi"})

    _refused_as_opted_out(app, response, vonage_api)


def test_a_stop_that_lands_after_the_first_look_up_still_refuses_the_send(
    app, send, vonage_api, monkeypatch
):
    """The opt-out list is read before a throttle slot is taken, and again in the
    row's own transaction: a STOP stored in between still stops the send."""
    from app.store import opt_outs

    sender = app.extensions["sender"]

    def stop_lands_after_the_look_up(to):
        with app.extensions["db"].begin() as connection:
            opt_outs.opt_out(connection, to, None)

    monkeypatch.setattr(sender, "_refuse_opted_out", stop_lands_after_the_look_up)

    response = send({"to": TO, "text": "Hi"})

    _refused_as_opted_out(app, response, vonage_api)


def test_daily_cap_refuses_once_reached(make_app, vonage_api):
    app = make_app(SEND_SMS_DAILY_LIMIT="2")
    accepted(vonage_api)
    client = app.test_client()

    def post():
        return client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers())

    assert [post().status_code for _ in range(2)] == [202, 202]
    response = post()

    assert response.status_code == 429
    assert response.json["type"].endswith("daily-limit")
    assert int(response.headers["Retry-After"]) > 0
    assert count_rows(app, "messages") == 2
    assert len(vonage_api.calls) == 2


def test_daily_cap_gives_back_slots_of_refused_messages(make_app, vonage_api):
    app = make_app(SEND_SMS_DAILY_LIMIT="1")
    vonage_api.post(MESSAGES_URL, status=400, json={"title": "Bad Request"})
    client = app.test_client()
    assert (
        client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()).status_code
        == 502
    )
    vonage_api.reset()
    accepted(vonage_api)
    assert (
        client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()).status_code
        == 202
    )


def test_daily_cap_zero_turns_it_off(make_app, vonage_api):
    app = make_app(SEND_SMS_DAILY_LIMIT="0")
    accepted(vonage_api)
    client = app.test_client()
    for _ in range(3):
        assert (
            client.post(
                "/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()
            ).status_code
            == 202
        )
