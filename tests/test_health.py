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


def test_not_ready_when_the_database_does_not_take_writes(app, client, monkeypatch):
    """A read answers while the disk is full or the write lock is held: readiness writes."""

    def full(connection, name="ready"):
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    monkeypatch.setattr("app.store.probe.touch", full)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"


def test_ready_probes_write_at_most_once_per_interval(app, client, monkeypatch):
    from app.store import probe

    writes = []
    real_touch = probe.touch
    monkeypatch.setattr(
        "app.store.probe.touch", lambda connection: writes.append(1) or real_touch(connection)
    )
    answers = [client.get("/health/ready").status_code for _ in range(5)]
    assert answers == [200] * 5
    assert len(writes) == 1


def test_not_ready_when_the_sqlite_folder_is_missing(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'gone' / 'sms.db'}")
    response = app.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
