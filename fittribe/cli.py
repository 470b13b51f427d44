"""Flask CLI commands: `flask seed`, `flask worker`."""
from __future__ import annotations

import time

import click
from flask import Flask, current_app


def register_cli(app: Flask) -> None:
    @app.cli.command("seed")
    @click.option("--trainers", "bulk_trainers", type=click.IntRange(0, 200_000), default=0,
                  help="Also create this many approved bulk trainers (for benchmarks).")
    def seed(bulk_trainers: int) -> None:
        """Create demo data (idempotent)."""
        from .seed import DEMO_ACCOUNTS, DEMO_PASSWORD, seed_bulk_trainers, seed_demo, seed_history

        created = seed_demo()
        click.echo(f"Demo data ready ({created['users']} users and {created['trainers']} trainers added).")
        history = seed_history()
        click.echo(f"History: {history['sessions']} past sessions, {history['reviews']} reviews and "
                   f"{history['flags']} open reports added.")
        for role, (email, _name, _tz) in DEMO_ACCOUNTS.items():
            click.echo(f"  {role.value:8} {email} / {DEMO_PASSWORD}")
        if bulk_trainers:
            started = time.perf_counter()
            made = seed_bulk_trainers(bulk_trainers)
            click.echo(f"Bulk trainers: {made} added in {time.perf_counter() - started:.1f}s.")

    @app.cli.command("notify")
    @click.argument("email")
    @click.argument("message")
    @click.option("--link", default=None, help="A site path the notification links to.")
    def notify_user(email: str, message: str, link: str | None) -> None:
        """Send an in-app notification to a user (pushed live to their open pages)."""
        from .extensions import db
        from .services.accounts import find_user_by_email
        from .services.notify import notify

        user = find_user_by_email(email)
        if user is None:
            raise click.ClickException(f"No user with email {email}.")
        notify(user.id, "announcement", message, link)
        db.session.commit()
        click.echo(f"Notified {user.email}.")

    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="Run every periodic job once and exit.")
    def worker(once: bool) -> None:
        """Background loop for periodic jobs (hold expiry, outbox relay, reminders, pruning)."""
        from .worker import run_worker

        run_worker(current_app._get_current_object(), once=once)
