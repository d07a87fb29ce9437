"""Migrations: data ones run from the revision before them on a real SQLite file;
the schema at head against the models."""

import os
import subprocess
import sys
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from app.store.engine import build_engine
from app.store.migrate import current_revision, head_revision, upgrade
from app.store.models import Base
from tests.conftest import TEST_DATABASE_URL
from tests.integration.conftest import fresh_postgres_database
from tests.support import clean_env


def test_0003_rewrites_stored_numbers_in_canonical_form(tmp_path):
    engine = build_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0004")
    now = datetime(2026, 11, 1, 12, 0)
    with engine.begin() as connection:
        for index, (sender, recipient, channel) in enumerate(
            [
                ("330612345678", "14155550199", "sms"),
                ("MyBrand", "14155550199", "sms"),
                ("14155550199", "22395", "sms"),
                ("330612345678", "14155550199", "whatsapp"),  # not SMS: left as it is
            ]
        ):
            connection.execute(
                text(
                    "INSERT INTO messages (id, direction, from_number, to_number, status,"
                    " channel, created_at, updated_at)"
                    " VALUES (:id, 'inbound', :f, :t, 'received', :c, :n, :n)"
                ),
                {"id": f"m{index}", "f": sender, "t": recipient, "c": channel, "n": now},
            )
        for number, moment in [("330612345678", now), ("33612345678", now), ("4909001234567", now)]:
            connection.execute(
                text("INSERT INTO opt_outs (number, opted_out_at) VALUES (:n, :at)"),
                {"n": number, "at": moment},
            )

    upgrade(engine)

    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, from_number, to_number FROM messages ORDER BY id")
        ).all()
        opted = connection.execute(text("SELECT number FROM opt_outs ORDER BY number")).scalars()
        assert [tuple(row) for row in rows] == [
            ("m0", "33612345678", "14155550199"),
            ("m1", "MyBrand", "14155550199"),
            ("m2", "14155550199", "22395"),
            ("m3", "330612345678", "14155550199"),
        ]
        assert list(opted) == ["33612345678", "499001234567"]
    engine.dispose()


def test_the_migrated_schema_is_the_models_schema(tmp_path, postgres_ready):
    """A table, column or index added to the models without a migration (or the
    reverse) would pass every test that builds its database from the migrations."""
    engines = [build_engine(f"sqlite:///{tmp_path / 'head.db'}")]
    upgrade(engines[0])
    if postgres_ready is not None:
        engines.append(postgres_ready)
    for engine in engines:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

        assert differences == [], engine.dialect.name
    engines[0].dispose()


POSTGRES_SERVER = os.environ.get("TEST_POSTGRES_URL") or (
    TEST_DATABASE_URL if TEST_DATABASE_URL.startswith("postgresql") else ""
)
MIGRATE = [sys.executable, "-m", "flask", "--app", "app", "migrate"]


@pytest.mark.skipif(not POSTGRES_SERVER, reason="needs TEST_POSTGRES_URL (see .ci/run)")
def test_concurrent_release_migrations_on_postgresql_all_succeed(tmp_path):
    """Several instances' release steps run `flask migrate` at once on an empty database:
    one upgrades, the others wait for its commit and find the database at head."""
    with fresh_postgres_database(POSTGRES_SERVER, "sms_concurrent_migrate") as url:
        env = clean_env(DATABASE_URL=url)
        runs = [
            subprocess.Popen(
                MIGRATE, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            for _ in range(3)
        ]
        outputs = [run.communicate(timeout=60)[0].decode() for run in runs]
        engine = build_engine(url)
        try:
            reached = current_revision(engine)
            head = head_revision(engine)
        finally:
            engine.dispose()

    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert reached == head
