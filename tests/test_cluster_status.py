"""How `python -m autograder.cluster status` says where a student stands, without Slurm: the
lines Slurm prints, parsed, and the rows they make."""

from autograder.cluster import slurm
from autograder.cluster.__main__ import __doc__ as CLUSTER_HELP
from autograder.cluster.status import not_submitted, print_status, state_of
from autograder.intake import collect

# what `squeue --noheader --array --states=all --format=%i|%T|%r` prints for an array of 8 run
# with --max-parallel 2, and `sacct --parsable2 --format=JobID,State` for a cancelled task
SQUEUE = """41_4|PENDING|JobArrayTaskLimit
41_5|PENDING|Resources
41_2|RUNNING|None
41_0|COMPLETED|None
"""
SACCT = "41_1|CANCELLED by 0\n41_1.batch|CANCELLED\n"


def test_slurms_lines_give_each_tasks_state_and_reason():
    assert slurm.parse_states(SQUEUE) == {
        4: ("PENDING", "JobArrayTaskLimit"), 5: ("PENDING", "Resources"),
        2: ("RUNNING", "None"), 0: ("COMPLETED", "None")}
    assert slurm.parse_states(SACCT) == {1: ("CANCELLED", "")}
    assert slurm.parse_states("") == {}


def test_a_pending_task_shows_slurms_reason():
    assert "Slurm's reason" in CLUSTER_HELP  # what `status` promises
    states = slurm.parse_states(SQUEUE)
    row = state_of(states[4], {}, None, False)
    assert row["state"] == "pending"
    assert row["reason"].startswith("PENDING: JobArrayTaskLimit (")
    assert "--max-parallel" in row["reason"]
    assert state_of(slurm.TaskState("PENDING", "None"), {}, None, False)["reason"] == "PENDING"
    assert state_of(states[2], {}, None, False) == {"state": "running", "reason": ""}


def test_a_refused_folder_says_refused_once(tmp_path, capsys):
    submissions = tmp_path / "submissions"
    (submissions / "linker").mkdir(parents=True)
    (tmp_path / "elsewhere.ipynb").write_text("{}")
    (submissions / "linker" / "ddim.ipynb").symlink_to(tmp_path / "elsewhere.ipynb")
    course = tmp_path / "course"
    refusals = collect.collect_student(submissions, "linker", course)
    reason = collect.submission_problem(refusals, course, "linker")
    assert reason.startswith("refused: ")
    row = not_submitted({"status": "failed", "reason": reason})
    print_status({"linker": row})
    line = next(line for line in capsys.readouterr().out.splitlines() if "linker" in line)
    assert line.count("refused") == 1, line
    assert "ddim.ipynb is a symbolic link" in line
    assert not_submitted(None) == {"state": "missing", "reason": "never submitted", "task": ""}
