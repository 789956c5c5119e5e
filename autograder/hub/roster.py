"""The course's people: a CSV of Unix user names and roles, and the accounts made from it.

    username,role
    alice,student
    tutor1,instructor

Each person gets a Unix account (home 0700, so no student reads another's files) and joins the
course's Unix group, which alone may reach the course's exchange. A new account gets a random
password, written once to a 0600 file for the instructor to hand out; an existing account
keeps its password. JupyterHub logs people in with PAM, against these accounts.
"""

import csv
import grp
import os
import pwd
import re
import secrets
import subprocess
from pathlib import Path

ROLES = ("student", "instructor")
# what useradd accepts, and nbgrader too ('+' and '*' would break its exchange's file names)
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class RosterError(ValueError):
    """The users CSV is unusable; the message says which line and why."""


def read_roster(path):
    """{username: role} from the CSV at `path` (header `username,role`)."""
    path = Path(path)
    if not path.is_file():
        raise RosterError(f"--users {path}: no such file (a CSV with the header username,role)")
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        rows, header = list(reader), reader.fieldnames or []
    if not rows or not {"username", "role"} <= set(header):
        raise RosterError(f"{path}: expected a header `username,role` and one row per person")
    people = {}
    for line, row in enumerate(rows, start=2):
        name, role = (row["username"] or "").strip(), (row["role"] or "").strip().lower()
        if not USERNAME.match(name):
            raise RosterError(f"{path}, line {line}: {name!r} is not a usable Unix user name "
                              "(lower-case letters, digits, _ and -, at most 32, not first a "
                              "digit or -)")
        if role not in ROLES:
            raise RosterError(f"{path}, line {line}: role {role!r} is not one of {ROLES}")
        if people.get(name, role) != role:
            raise RosterError(f"{path}, line {line}: {name} is listed twice with two roles")
        people[name] = role
    if "instructor" not in people.values():
        raise RosterError(f"{path}: list at least one instructor (role `instructor`)")
    return people


def unix_group(course_id):
    """The course's Unix group: its members alone may reach the course's exchange."""
    return f"course-{course_id}"[:32]


def ensure_group(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", name], check=True)
        return grp.getgrnam(name).gr_gid


def ensure_accounts(people, course_id, passwords_file):
    """Makes the missing accounts (random password, appended to `passwords_file`), puts
    everyone into the course's group and locks every home to its owner."""
    group = unix_group(course_id)
    ensure_group(group)
    new_passwords = {}
    for name in people:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name],
                           check=True)
            new_passwords[name] = secrets.token_urlsafe(12)
        if name not in grp.getgrnam(group).gr_mem:
            subprocess.run(["usermod", "--append", "--groups", group, name], check=True)
        os.chmod(pwd.getpwnam(name).pw_dir, 0o700)
    if new_passwords:
        set_passwords(new_passwords)
        passwords_file = Path(passwords_file)
        with os.fdopen(os.open(passwords_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                       "a") as file:
            file.writelines(f"{name},{password}\n" for name, password in new_passwords.items())
    return sorted(new_passwords)


def set_passwords(passwords):
    """Sets {username: password} with chpasswd (the password never appears in a command line)."""
    lines = "".join(f"{name}:{password}\n" for name, password in passwords.items())
    subprocess.run(["chpasswd"], input=lines, text=True, check=True)
