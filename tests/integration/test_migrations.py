"""Every migration upgrades and downgrades cleanly, on PostgreSQL and on SQLite (`make run`)."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.conftest import SERVER_URL, _psycopg_url, _with_database
from tests.helpers import ROOT


def flask_db(database_url: str, instance: Path, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "INSTANCE_PATH": str(instance), "REDIS_URL": ""}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr + result.stdout


def round_trip(database_url: str, instance: Path) -> None:
    flask_db(database_url, instance, "upgrade")
    flask_db(database_url, instance, "downgrade", "base")
    flask_db(database_url, instance, "upgrade")
    assert "No new upgrade operations detected" in flask_db(database_url, instance, "check")  # models == migrations


def test_sqlite_round_trip(tmp_path):
    round_trip(f"sqlite:///{tmp_path / 'round.db'}", tmp_path)


def test_postgresql_round_trip(tmp_path):
    name = f"fittribe_migrations_{secrets.token_hex(4)}"
    admin_url = _psycopg_url(SERVER_URL)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        round_trip(_with_database(SERVER_URL, name).replace("postgresql://", "postgresql+psycopg://", 1), tmp_path)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
