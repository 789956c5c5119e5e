"""Starts, finds and stops the hub process, and what it leaves behind.

The hub runs in the background in its own session; its log is hub_dir/jupyterhub.log. After a
crash (SIGKILL) its children live on: the proxy (JupyterHub replaces it on the next start, from
its pid file), the formgraders (stopped here, found by their ports) and the people's servers
(kept: the hub finds them again in its database, so nobody's work is lost).
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the hub imports autograder.hub.app from here
START_TIMEOUT_S = 180  # the formgraders start first (autograder/hub/app.py)


def hub_pid(hub_dir):
    """The pid of the running hub, or None."""
    pid_file = Path(hub_dir) / "jupyterhub.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if ours({pid}, "autograder.hub.app") else None


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def listeners(port):
    """Pids of the processes listening on 127.0.0.1:`port`."""
    found = subprocess.run(["ss", "-H", "-ltnp", f"sport = :{port}"], capture_output=True,
                           text=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", found)}


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def ours(pids, marker):
    """The pids among `pids` whose command line holds `marker` (a stale pid may be reused)."""
    return {pid for pid in pids if marker in command_line(pid)}


def stop_pids(pids, grace_s=10):
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM) if os.getpgid(pid) == pid else os.kill(
                pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]}
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def server_pids(hub_dir):
    """Pids of the people's servers, from the hub's database (LocalProcessSpawner's state)."""
    database = Path(hub_dir) / "jupyterhub.sqlite"
    if not database.exists():
        return set()
    with sqlite3.connect(database) as connection:
        states = connection.execute("SELECT state FROM spawners").fetchall()
    pids = set()
    for (state,) in states:
        try:
            pid = json.loads(state or "{}").get("pid")
        except ValueError:
            continue
        if pid:
            pids.add(int(pid))
    return pids


def start(hub_dir, config, port, service_ports):
    """Starts the hub with `config` unless it runs; returns (pid, seconds it took)."""
    started = time.monotonic()
    running = hub_pid(hub_dir)
    if running:
        return running, 0.0
    stop_pids(ours(set().union(set(), *map(listeners, service_ports)), "singleuser"))
    log = open(Path(hub_dir) / "jupyterhub.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "autograder.hub.app", "-f", str(config)], cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"})
    deadline = started + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop_proxy(hub_dir)  # a hub that failed at start may leave its proxy behind
            raise SystemExit(f"the hub stopped at start (exit {process.returncode}):\n"
                             + tail(hub_dir))
        if answers(f"http://127.0.0.1:{port}/hub/api"):
            return process.pid, time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"the hub did not answer within {START_TIMEOUT_S} s:\n" + tail(hub_dir))


def stop(hub_dir, service_ports, servers_too=True):
    """Stops the hub, its proxy and formgraders, and (unless not `servers_too`) the people's
    servers."""
    servers = server_pids(hub_dir) if servers_too else set()
    pid = hub_pid(hub_dir)
    if pid:
        stop_pids({pid}, grace_s=20)
    stop_proxy(hub_dir)
    leftovers = ours(set().union(set(), *map(listeners, service_ports)), "singleuser")
    stop_pids(leftovers | ours(servers, "singleuser"))


def stop_proxy(hub_dir):
    """Stops the hub's proxy, found by its pid file."""
    proxy_pid_file = Path(hub_dir) / "proxy.pid"
    try:
        stop_pids(ours({int(proxy_pid_file.read_text().strip())}, "http-proxy"))
        proxy_pid_file.unlink()
    except (OSError, ValueError):
        pass


def tail(hub_dir, lines=40):
    log = Path(hub_dir) / "jupyterhub.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
