#!/usr/bin/env bash
# Smoke test of the compose stack through nginx (CI runs it after `docker compose up`):
# health of both engines, pages, the SSE stream unbuffered on both nodes, X-Forwarded-* trusted.
# Usage: deploy/smoke.sh [base URL, default http://localhost:8080]
# The host must be SITE_URL's (compose.yaml: localhost): production refuses any other Host (400).
set -euo pipefail
base=${1:-http://localhost:8080}
compose=(docker compose -f "$(dirname "$0")/compose.yaml")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

fail() { echo "SMOKE FAIL: $*" >&2; "${compose[@]}" logs --tail 50 >&2 || true; exit 1; }

for _ in $(seq 60); do
  curl -fsS "$base/healthz" -o "$work/health" 2>/dev/null && break
  sleep 2
done
grep -q '"database": *"ok"' "$work/health" && grep -q '"redis": *"ok"' "$work/health" \
  || fail "/healthz: $(cat "$work/health" 2>/dev/null)"
echo "ok /healthz: $(cat "$work/health")"

"${compose[@]}" exec -T web1 flask --app wsgi seed >/dev/null
home=$(curl -fsS "$base/") || fail "GET /"
[ "$(grep -c 'class="card trainer-card"' <<<"$home")" -ge 1 ] || fail "no trainer on the homepage"
curl -fsS "$base/trainers?specialty=yoga" -o /dev/null || fail "GET /trainers"
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")
[ "$status" = 403 ] || fail "/metrics through nginx answered $status (a relayed request must need the token)"
echo "ok pages; /metrics refused through the proxy"

# Four streams (least_conn spreads them over web1 and web2), then one event published from web1:
# every stream gets it through nginx at once, not when a buffer fills.
for n in 1 2 3 4; do
  curl -sN --max-time 30 -D "$work/headers$n" "$base/stream" >"$work/stream$n" &
done
for n in 1 2 3 4; do
  for _ in $(seq 50); do grep -q ': connected' "$work/stream$n" 2>/dev/null && break; sleep 0.2; done
  grep -qi '^content-type: text/event-stream' "$work/headers$n" || fail "stream $n: $(cat "$work/headers$n")"
done
"${compose[@]}" exec -T web1 python -c "
from wsgi import app
from fittribe.extensions import db
from fittribe.realtime import outbox
with app.app_context():
    outbox.record('public', type='smoke', data='through nginx')
    db.session.commit()
"
for n in 1 2 3 4; do
  for _ in $(seq 50); do grep -q 'event:smoke' "$work/stream$n" && break; sleep 0.1; done
  grep -q 'event:smoke' "$work/stream$n" || fail "stream $n did not get the event: $(cat "$work/stream$n")"
done
echo "ok 4 streams got the event through nginx"
for node in web1 web2; do
  opened=$("${compose[@]}" exec -T "$node" python -c "
import urllib.request
text = urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode()
print(int(sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith('fittribe_sse_open_streams'))))
")
  echo "ok $node holds $opened open streams"
  [ "$opened" -ge 1 ] || fail "$node holds no stream: nginx did not spread them"
done
echo "SMOKE OK"
