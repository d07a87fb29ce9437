from alembic import context
from sqlalchemy import text

from app.store.models import Base

# An arbitrary, fixed key for PostgreSQL's advisory lock on migrations ("sms-migr").
MIGRATION_LOCK = 0x736D732D6D696772

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Releases run `migrate` from several places at once (an init step per
            # instance): one upgrades, the others wait here for its commit and then
            # find the database at head. SQLite is serialised by a file lock instead.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
    connection.commit()
