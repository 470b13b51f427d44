"""gunicorn settings: gevent workers so one process holds many open SSE streams."""
import multiprocessing
import os

port = os.environ.get("PORT")
bind = os.environ.get("BIND") or (f"0.0.0.0:{port}" if port else "127.0.0.1:5000")
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", min(2, multiprocessing.cpu_count())))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", 10000))
# Streams are long-lived: a deploy should not wait gunicorn's default 30 s for them.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", 5))
timeout = 30
keepalive = 5
# ACCESS_LOG="" turns the access log off (gunicorn would try to open a file named "").
accesslog = os.environ.get("ACCESS_LOG", "-") or None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
