#!/usr/bin/env bash
# A PostgreSQL server for the nbgrader gradebook, for tests and trials on one machine.
#
#   scripts/services/postgres.sh start   # starts it (or finds it running); prints the settings
#   scripts/services/postgres.sh env     # prints the settings of the running server
#   scripts/services/postgres.sh stop    # stops it; the data stays for the next start
#
# Settings printed (eval "$(scripts/services/postgres.sh start)"):
#   NBGRADER_DB_URL=postgresql+psycopg://autograder@127.0.0.1:PORT/gradebook
#   PGPASSFILE=<a 0600 file with the password>: the password is never part of the URL, so it
#   never reaches the environment of the grading kernel.
# The server listens on 127.0.0.1 only (no Unix socket): the grading sandbox has no network,
# so student code cannot reach it. Needs the Debian package `postgresql`; run as root (the
# server itself runs as the `postgres` user) or as the user who owns AUTOGRADER_SERVICES.
set -euo pipefail

STATE="${AUTOGRADER_SERVICES:-/tmp/autograder-services}/postgres"
PORT="${AUTOGRADER_PG_PORT:-55432}"
DATA="$STATE/data"
PASSFILE="$STATE/pgpass"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$BIN/pg_ctl" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }

as_owner() {  # the server refuses to run as root
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

print_settings() {
    echo "export NBGRADER_DB_URL=postgresql+psycopg://autograder@127.0.0.1:$PORT/gradebook"
    echo "export PGPASSFILE=$PASSFILE"
}

running() { [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
    if running; then print_settings; return; fi
    mkdir -p "$STATE"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        mkdir -p "$DATA"
        password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
        initpw="$(mktemp)"
        echo "$password" > "$initpw"
        [ "$(id -u)" = 0 ] && chown postgres "$DATA" "$initpw"
        # one superuser, `autograder`, with a password; connections only over TCP from 127.0.0.1
        as_owner "$BIN/initdb" -D "$DATA" -U autograder --pwfile="$initpw" \
            --auth-host=scram-sha-256 --auth-local=reject -E UTF8 >"$STATE/initdb.log"
        rm -f "$initpw"
        (umask 077; echo "127.0.0.1:$PORT:*:autograder:$password" > "$PASSFILE")
    fi
    # max_connections: each grading task holds one or two connections at a time
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 30 start -o \
        "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='' -c max_connections=200" \
        >/dev/null
    export PGPASSFILE="$PASSFILE"
    if ! "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U autograder -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'gradebook'" | grep -q 1; then
        "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U autograder gradebook
    fi
    print_settings
}

stop() {
    if running; then as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) running || { echo "PostgreSQL is not running: $0 start" >&2; exit 1; }; print_settings ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
