"""Flask commands for operators: `flask --app app <command>`."""

from __future__ import annotations

import click
from flask import Flask, current_app

from app.store import migrate as migrations


def register(app: Flask) -> None:
    app.cli.add_command(migrate_command)


@click.command("migrate")
@click.option("--revision", default="head", show_default=True)
def migrate_command(revision: str) -> None:
    """Apply the database migrations (the Procfile's release phase runs this)."""
    migrations.upgrade(current_app.extensions["db"], revision)
    click.echo(f"database at {revision}")
