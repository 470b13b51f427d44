"""Every migration upgrades and downgrades cleanly, and the models match the migrations."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg

from fittribe.embedded import with_database
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


def test_postgresql_round_trip(postgres_server, tmp_path):
    name = f"fittribe_migrations_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        round_trip(with_database(postgres_server, name).replace("postgresql://", "postgresql+psycopg://", 1), tmp_path)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
