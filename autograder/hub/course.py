"""A course on the hub: its folder, its exchange, and the nbgrader settings its graders use.

The course folder is the kit's: `autograder.grading.demo.prepare_course_folder` copies the
instructor source and generates the release, exactly as `python -m autograder grade` does, so
the same folder can also be graded from the command line or on a cluster. The formgrader and
`python -m autograder.hub nbgrader COURSE_ID ...` read one settings file, which loads the kit's
nbgrader_config.py and adds the course's id and exchange: the button and the command line take
the same path.

The exchange, per course, under the hub's exchange root (mode 1777, as nbgrader requires):

    <course_id>/            root:course-<id> 0750   only the course's members enter
        outbound/           root:course-<id> 0750   the releases, readable by them
        inbound/            root:course-<id> 2730   they add submissions; nobody lists them
        feedback/           root:course-<id> 0710   files named by a secret hash, one owner each
"""

import os
import subprocess
import sys
from pathlib import Path

from autograder.hub.roster import ensure_group, unix_group

REPO_ROOT = Path(__file__).resolve().parents[2]
KIT_CONFIG = REPO_ROOT / "nbgrader_config.py"
# environment the grading needs, passed on to the formgrader when set (tests share a cache)
PASSED_ON = ("DIFFUSION_GRADER_CACHE", "AUTOGRADER_SANDBOX", "NBGRADER_DB_URL", "PGPASSFILE")
EXCHANGE_FOLDERS = {"": 0o750, "outbound": 0o750, "inbound": 0o2730, "feedback": 0o710}


def prepare_course_folder(course_root):
    """The kit's course folder (source, release, gradebook), private to root (mode 0700)."""
    from autograder.grading import demo  # heavy imports only when a course is made

    course_root = Path(course_root)
    course_root.mkdir(parents=True, exist_ok=True)
    os.chmod(course_root, 0o700)
    demo.check_out(course_root)
    demo.prepare_course_folder(course_root, force=False)


def prepare_exchange(exchange_root, course_id):
    """The course's exchange folders, reachable by the course's Unix group only."""
    exchange_root = Path(exchange_root)
    exchange_root.mkdir(parents=True, exist_ok=True)
    os.chmod(exchange_root, 0o1777)  # nbgrader requires o+rwx; sticky, as /tmp
    gid = ensure_group(unix_group(course_id))
    for name, mode in EXCHANGE_FOLDERS.items():
        folder = exchange_root / course_id / name
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, 0, gid)
        os.chmod(folder, mode)


def settings_folder(hub_dir, course_id):
    return Path(hub_dir) / "courses" / course_id


def write_settings(hub_dir, course_id, exchange_root):
    """The course's nbgrader_config.py for its graders; returns its folder (their cwd)."""
    folder = settings_folder(hub_dir, course_id)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    (folder / "nbgrader_config.py").write_text(f'''\
"""Course {course_id} on the hub (written by python -m autograder.hub start): the kit's nbgrader
settings, and the course's id and exchange."""
import os

c = get_config()  # noqa: F821
assert os.path.isfile({str(KIT_CONFIG)!r}), "the kit's nbgrader_config.py is missing"
load_subconfig({str(KIT_CONFIG)!r})  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {str(exchange_root)!r}
c.ExchangeFactory.collect = "autograder.hub.exchange.OwnedCollect"
c.ExchangeFactory.release_feedback = "autograder.hub.exchange.PrivateReleaseFeedback"
# the summary's rubric: in the formgrader's copy, never in the feedback (autograder/hub/rubric.py)
from autograder.hub.rubric import HideRubric, ShowRubric  # noqa: E402

c.Autograde.autograde_preprocessors = [*c.Autograde.autograde_preprocessors, ShowRubric]
c.GenerateFeedback.preprocessors = [HideRubric, *c.GenerateFeedback.preprocessors]
if os.environ.get("AUTOGRADER_FORMGRADER"):
    # the formgrader draws its grading pages with nbgrader's own template, not the feedback's
    c.HTMLExporter.template_file = "index.html.j2"
''')
    return folder


def grader_environment(course_root):
    """The environment of the course's graders: the course folder, and what grading needs."""
    from diffusion_course.config import default_profile
    from diffusion_course.quiet import quiet_tensorflow_startup

    if not os.environ.get("DIFFUSION_PROFILE"):
        quiet_tensorflow_startup(probe_gpus=True)  # TensorFlow's start-up notices say nothing
    environment = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    # the grading profile, decided here once: each grading would otherwise start TensorFlow
    # only to look for a GPU (as `python -m autograder grade` does, grading/demo.py)
    return {**environment, "DIFFUSION_PROFILE": default_profile(),
            "AUTOGRADER_COURSE_ROOT": str(course_root),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/sbin",
                                     "/usr/bin", "/sbin", "/bin"]),
            "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def run_nbgrader(hub_dir, course_id, course_root, arguments):
    """Runs one nbgrader command with the course's settings, as the formgrader would."""
    return subprocess.run([sys.executable, "-m", "nbgrader", *arguments],
                          cwd=settings_folder(hub_dir, course_id),
                          env=grader_environment(course_root)).returncode

