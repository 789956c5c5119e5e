#!/usr/bin/env bash
# The course's JupyterHub on this machine, for trials and a small course (autograder/hub/).
#
#   scripts/services/hub.sh start COURSE_DIR USERS_CSV   # starts it (or finds it running)
#   scripts/services/hub.sh status                       # is it running?
#   scripts/services/hub.sh stop                         # stops the hub and everyone's servers
#
# USERS_CSV has the header `username,role` (role: student or instructor); each person gets a
# Unix account (new accounts' passwords: $STATE/initial_passwords.csv, root only). The hub
# listens on 127.0.0.1:${AUTOGRADER_HUB_PORT:-8000}; the formgrader is at
# /services/formgrader-<course id>/ (the course id is COURSE_DIR's name). Needs root, and
# npm's configurable-http-proxy (npm install -g configurable-http-proxy@5.0.1).
set -euo pipefail
cd "$(dirname "$0")/../.."

STATE="${AUTOGRADER_SERVICES:-/tmp/autograder-services}/hub"
PORT="${AUTOGRADER_HUB_PORT:-8000}"
hub() { python -m autograder.hub --hub-dir "$STATE" "$@"; }

case "${1:-}" in
    start)
        [ $# -eq 3 ] || { echo "usage: $0 start COURSE_DIR USERS_CSV" >&2; exit 2; }
        hub start --course "$2" --users "$3" --port "$PORT" ;;
    status) hub status ;;
    stop) hub stop ;;
    *) echo "usage: $0 start COURSE_DIR USERS_CSV | status | stop" >&2; exit 2 ;;
esac
