"""The hub's jupyterhub_config.py, written from the hub's state (its courses and people).

- Log-in: PAM, against the Unix accounts of `roster.py`; only the listed people (no sign-up).
- Servers: one per person, run as that person's Unix user (LocalProcessSpawner), with the
  students' Python of `student_python.py`, and none of the hub's environment (no PYTHONPATH).
- Per course: groups `<id>-instructors` and `<id>-students`, and a formgrader service
  `formgrader-<id>` that only the course's instructors may reach (role `formgrader-<id>`).
  The formgrader runs as root, the grading sandbox's user, in the course's settings folder.
"""

import json
import shutil
import sys
from pathlib import Path

from autograder.hub import course

PROXY = "configurable-http-proxy"  # npm's, pinned in .ci/run and the README


def service_name(course_id):
    return f"formgrader-{course_id}"


def find_proxy():
    found = shutil.which(PROXY)
    if found is None:
        raise SystemExit(f"{PROXY} is not installed: npm install -g {PROXY}@5.0.1")
    return found


def formgrader_service(hub_dir, course_id, settings, port):
    """The course's formgrader: a Jupyter server with only nbgrader's formgrader, as a service."""
    config_dir = course.settings_folder(hub_dir, course_id) / "jupyter"
    config_dir.mkdir(parents=True, exist_ok=True)
    # no lab, no terminals, no assignment list: the formgrader's pages and API only
    (config_dir / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {
        "jpserver_extensions": {"nbgrader.server_extensions.formgrader": True,
                                "nbgrader.server_extensions.assignment_list": False,
                                "nbgrader.server_extensions.course_list": False,
                                "nbgrader.server_extensions.validate_assignment": False,
                                "jupyterlab": False, "notebook": False, "jupyter_lsp": False,
                                "jupyter_server_terminals": False},
        "terminals_enabled": False}}, indent=1))
    return {
        "name": service_name(course_id),
        "url": f"http://127.0.0.1:{port}",
        "command": [sys.executable, "-m", "jupyterhub.singleuser", "--ServerApp.allow_root=True",
                    f"--ServerApp.root_dir={settings['root']}"],
        "cwd": str(course.settings_folder(hub_dir, course_id)),
        "environment": {**course.grader_environment(settings["root"]),
                        "JUPYTER_CONFIG_DIR": str(config_dir), "AUTOGRADER_FORMGRADER": "1",
                        "JUPYTERHUB_DEFAULT_URL": "/formgrader"},
        "oauth_no_confirm": True,
        "display": True,
        "info": {"course": course_id},
    }


def groups_and_roles(courses):
    groups, roles = {}, []
    for course_id, settings in courses.items():
        for role in ("instructor", "student"):
            groups[f"{course_id}-{role}s"] = {
                "users": sorted(name for name, has in settings["people"].items() if has == role)}
        roles.append({"name": service_name(course_id),
                      "description": f"grade course {course_id} in its formgrader",
                      "scopes": [f"access:services!service={service_name(course_id)}"],
                      "groups": [f"{course_id}-instructors"]})
    return groups, roles


def write_hub_config(hub_dir, state, student_python):
    """Writes hub_dir/jupyterhub_config.py; returns its path."""
    hub_dir = Path(hub_dir)
    port = state["port"]
    courses = state["courses"]
    groups, roles = groups_and_roles(courses)
    services = [formgrader_service(hub_dir, course_id, settings, port + 10 + index)
                for index, (course_id, settings) in enumerate(sorted(courses.items()))]
    people = sorted({name for settings in courses.values() for name in settings["people"]})
    values = {
        "bind_url": f"http://{state['ip']}:{port}",
        "hub_bind_url": f"http://127.0.0.1:{port + 1}",
        "proxy_api_url": f"http://127.0.0.1:{port + 2}",
        "proxy": find_proxy(),
        "hub_dir": str(hub_dir),
        "people": people,
        "groups": groups,
        "roles": roles,
        "services": services,
        "student_python": str(student_python),
        "student_path": f"{Path(student_python).parent}:/usr/local/bin:/usr/bin:/bin",
    }
    config = hub_dir / "jupyterhub_config.py"
    config.write_text(TEMPLATE.format(values=json.dumps(values, indent=1)))
    return config


TEMPLATE = '''\
"""The course hub (written by python -m autograder.hub start; autograder/hub/hub_config.py)."""
import json

v = json.loads(r"""{values}""")
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = v["bind_url"]
c.JupyterHub.hub_bind_url = v["hub_bind_url"]
c.ConfigurableHTTPProxy.api_url = v["proxy_api_url"]
c.ConfigurableHTTPProxy.command = [v["proxy"]]
c.ConfigurableHTTPProxy.pid_file = v["hub_dir"] + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + v["hub_dir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = v["hub_dir"] + "/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = v["hub_dir"] + "/jupyterhub.pid"

# log-in: the listed people's Unix accounts, through PAM; nobody else, no sign-up
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = set(v["people"])
c.JupyterHub.load_groups = v["groups"]
c.JupyterHub.load_roles = v["roles"]
c.JupyterHub.services = v["services"]

# each person's server runs as their Unix user, with the students' Python (no repository)
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [v["student_python"], "-m", "jupyterhub.singleuser"]
c.Spawner.env_keep = ["LANG", "LC_ALL", "TZ"]
c.Spawner.environment = {{"PATH": v["student_path"], "TF_CPP_MIN_LOG_LEVEL": "2"}}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# servers outlive a restart of the hub (a crash loses no one's work)
c.JupyterHub.cleanup_servers = False
'''
