# Starts Debian's prometheus-alertmanager on loopback for the alerting tests. `source` it (from
# scripts/test-all); it installs the package when no alertmanager binary is found, starts one
# instance with clustering disabled, a temporary storage path and a config whose only receiver
# is a webhook on a second free loopback port (the test binds that port to check what
# Alertmanager delivers), waits until /-/ready answers, and exports
#   RECSERVE_TEST_ALERTMANAGER_URL           http://127.0.0.1:<port>
#   RECSERVE_TEST_ALERTMANAGER_WEBHOOK_PORT  the port Alertmanager's webhook receiver posts to
#   RECSERVE_REQUIRE_ALERTMANAGER=1          so the tests fail instead of skipping
# and defines `alertmanager_stop` (kills the instance and removes its directory).

alertmanager_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alertmanager_start() {
  local bin
  bin="$(command -v prometheus-alertmanager || command -v alertmanager || true)"
  if [[ -z "$bin" ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null
    # The package starts a service of its own where an init system runs; ours is separate.
    bin="$(command -v prometheus-alertmanager || command -v alertmanager || true)"
    [[ -n "$bin" ]] || { echo "alertmanager: no binary after installing prometheus-alertmanager" >&2; return 1; }
  fi
  ALERTMANAGER_DIR="$(mktemp -d -t recserve-alertmanager.XXXXXX)"
  local port hook_port
  port="$(alertmanager_free_port)"
  hook_port="$(alertmanager_free_port)"
  cat >"$ALERTMANAGER_DIR/alertmanager.yml" <<YAML
route:
  receiver: recserve-test-hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: recserve-test-hook
    webhook_configs:
      - url: http://127.0.0.1:${hook_port}/hook
        send_resolved: true
YAML
  "$bin" --config.file="$ALERTMANAGER_DIR/alertmanager.yml" \
    --storage.path="$ALERTMANAGER_DIR/data" \
    --web.listen-address="127.0.0.1:${port}" \
    --cluster.listen-address= \
    --log.level=warn >"$ALERTMANAGER_DIR/alertmanager.log" 2>&1 &
  ALERTMANAGER_PID=$!
  local i
  for i in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:${port}/-/ready" >/dev/null 2>&1; then
      export RECSERVE_TEST_ALERTMANAGER_URL="http://127.0.0.1:${port}"
      export RECSERVE_TEST_ALERTMANAGER_WEBHOOK_PORT="$hook_port"
      export RECSERVE_REQUIRE_ALERTMANAGER=1
      echo "alertmanager ready at $RECSERVE_TEST_ALERTMANAGER_URL (pid $ALERTMANAGER_PID, webhook port $hook_port)"
      return 0
    fi
    if ! kill -0 "$ALERTMANAGER_PID" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  echo "alertmanager did not become ready; its log:" >&2
  cat "$ALERTMANAGER_DIR/alertmanager.log" >&2
  alertmanager_stop
  return 1
}

alertmanager_stop() {
  if [[ -n "${ALERTMANAGER_PID:-}" ]]; then
    kill "$ALERTMANAGER_PID" 2>/dev/null || true
    wait "$ALERTMANAGER_PID" 2>/dev/null || true
    ALERTMANAGER_PID=
  fi
  if [[ -n "${ALERTMANAGER_DIR:-}" ]]; then
    rm -rf "$ALERTMANAGER_DIR"
    ALERTMANAGER_DIR=
  fi
}

alertmanager_start
