# shellcheck shell=bash
# A throwaway MariaDB server on loopback for the store's integration tests.
#
# Meant to be `source`d (scripts/test-all does): installs mariadb-server through apt when no
# `mariadbd`/`mysqld` is found, initialises a data directory under a fresh temporary directory,
# starts the server on 127.0.0.1 with a free port and its own socket (grant tables on: the tests
# connect as the user `recserve`), waits until it answers, creates the database `recserve_test`
# and exports
#
#   RECSERVE_TEST_MYSQL_URL=mysql://recserve:recserve@127.0.0.1:<port>/recserve_test
#   RECSERVE_REQUIRE_MYSQL=1
#
# It sets no trap of its own: the caller stops the server with `mariadb_stop` (idempotent), e.g.
# `trap mariadb_stop EXIT`. Standalone use: `source scripts/services/mariadb.sh` in a shell, or
# `bash scripts/services/mariadb.sh --foreground` to keep a server running until Ctrl-C.

MARIADB_DIR=""
MARIADB_PID=""

mariadb_stop() {
  if [[ -n "${MARIADB_PID:-}" ]] && kill -0 "$MARIADB_PID" 2>/dev/null; then
    kill "$MARIADB_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      kill -0 "$MARIADB_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$MARIADB_PID" 2>/dev/null && kill -9 "$MARIADB_PID" 2>/dev/null
  fi
  MARIADB_PID=""
  if [[ -n "${MARIADB_DIR:-}" && -d "$MARIADB_DIR" ]]; then
    rm -rf "$MARIADB_DIR"
  fi
  MARIADB_DIR=""
}

_mariadb_find() {
  local name
  for name in mariadbd mysqld; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    if [[ -x "/usr/sbin/$name" ]]; then echo "/usr/sbin/$name"; return 0; fi
  done
  return 1
}

_mariadb_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_mariadb_start() {
  local server install_db client port attempt i
  if ! server="$(_mariadb_find)"; then
    echo "mariadb: installing mariadb-server (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
    # The package starts a system service on 3306; the tests use their own server.
    { command -v systemctl >/dev/null && systemctl stop mariadb; } >/dev/null 2>&1 || true
    server="$(_mariadb_find)" || { echo "mariadb: no mariadbd/mysqld after installing" >&2; return 1; }
  fi
  install_db="$(command -v mariadb-install-db || command -v mysql_install_db)" \
    || { echo "mariadb: mariadb-install-db not found" >&2; return 1; }
  client="$(command -v mariadb || command -v mysql)" || { echo "mariadb: no client" >&2; return 1; }

  MARIADB_DIR="$(mktemp -d "${TMPDIR:-/tmp}/recserve-mariadb.XXXXXX")"
  "$install_db" --no-defaults --datadir="$MARIADB_DIR/data" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >"$MARIADB_DIR/install.log" 2>&1 \
    || { echo "mariadb: mariadb-install-db failed:" >&2; cat "$MARIADB_DIR/install.log" >&2; return 1; }

  for attempt in 1 2 3; do
    port="$(_mariadb_free_port)"
    "$server" --no-defaults --user=root --datadir="$MARIADB_DIR/data" \
      --socket="$MARIADB_DIR/mysqld.sock" --pid-file="$MARIADB_DIR/mysqld.pid" \
      --bind-address=127.0.0.1 --port="$port" --skip-name-resolve \
      --log-error="$MARIADB_DIR/error.log" --max-connections=1000 \
      --innodb-buffer-pool-size=256M --max-allowed-packet=64M >/dev/null 2>&1 &
    MARIADB_PID=$!
    for ((i = 0; i < 300; i++)); do
      if "$client" --no-defaults --protocol=socket --socket="$MARIADB_DIR/mysqld.sock" -uroot \
        -e 'SELECT 1' >/dev/null 2>&1; then
        break
      fi
      kill -0 "$MARIADB_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$MARIADB_PID" 2>/dev/null; then break; fi
    echo "mariadb: server did not start on port $port (attempt $attempt):" >&2
    tail -n 20 "$MARIADB_DIR/error.log" >&2 || true
    MARIADB_PID=""
  done
  [[ -n "$MARIADB_PID" ]] || return 1

  "$client" --no-defaults --protocol=socket --socket="$MARIADB_DIR/mysqld.sock" -uroot <<'SQL' \
    || { echo "mariadb: could not create the test user and database" >&2; return 1; }
CREATE DATABASE IF NOT EXISTS recserve_test;
CREATE USER IF NOT EXISTS 'recserve'@'127.0.0.1' IDENTIFIED BY 'recserve';
CREATE USER IF NOT EXISTS 'recserve'@'localhost' IDENTIFIED BY 'recserve';
GRANT ALL PRIVILEGES ON *.* TO 'recserve'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'recserve'@'localhost';
FLUSH PRIVILEGES;
SQL
  # The tests connect over TCP as the user, like the server does.
  "$client" --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -urecserve -precserve \
    -e 'SELECT 1' recserve_test >/dev/null \
    || { echo "mariadb: user recserve cannot log in over TCP" >&2; return 1; }

  export RECSERVE_TEST_MYSQL_URL="mysql://recserve:recserve@127.0.0.1:$port/recserve_test"
  export RECSERVE_REQUIRE_MYSQL=1
  echo "mariadb: $("$server" --version | head -n1) on 127.0.0.1:$port (pid $MARIADB_PID, dir $MARIADB_DIR)"
}

if ! _mariadb_start; then
  mariadb_stop
  if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then return 1; else exit 1; fi
fi

if [[ "${BASH_SOURCE[0]}" == "$0" && "${1:-}" == "--foreground" ]]; then
  trap mariadb_stop EXIT
  echo "RECSERVE_TEST_MYSQL_URL=$RECSERVE_TEST_MYSQL_URL"
  wait "$MARIADB_PID"
fi
