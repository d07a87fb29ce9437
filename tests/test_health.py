from sqlalchemy.exc import OperationalError


def test_health_touches_nothing(app, client, monkeypatch):
    monkeypatch.setattr("app.extensions.engine", lambda: (_ for _ in ()).throw(AssertionError))
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_when_the_database_answers(client):
    assert client.get("/health/ready").status_code == 200


def test_not_ready_when_the_database_does_not_answer(app, client, monkeypatch):
    def broken():
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(app.extensions["db"], "connect", broken)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"


def test_health_is_never_rate_limited(make_app):
    app = make_app(SEND_SMS_RATE_LIMIT="1/minute")
    client = app.test_client()
    assert [client.get("/health").status_code for _ in range(5)] == [200] * 5
