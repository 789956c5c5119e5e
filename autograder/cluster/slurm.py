"""The three Slurm commands the cluster grading needs: sbatch, squeue (or sacct) and scancel.

Plain command-line calls, so that every step can be retried by hand on a real cluster with the
same command. A task's state and Slurm's reason come from `squeue --states=all`, which keeps
finished jobs for MinJobAge seconds (300 by default), and then from `sacct`, where the site keeps
job accounting (it is off on the test cluster of scripts/services/slurm.sh).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

TEMPLATE = Path(__file__).resolve().parent / "grade.sbatch"
WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"}
RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
# what each way of ending means, for the instructor reading `status`
ENDINGS = {
    "COMPLETED": "the task finished",
    "FAILED": "the task exited with an error",
    "CANCELLED": "cancelled (scancel, or an administrator)",
    "TIMEOUT": "killed at the time limit (#SBATCH --time)",
    "NODE_FAIL": "the node failed",
    "OUT_OF_MEMORY": "killed for exceeding its memory (#SBATCH --mem)",
    "PREEMPTED": "preempted by a higher-priority job",
    "BOOT_FAIL": "the node failed to boot",
    "DEADLINE": "killed at its deadline",
}


# why a task waits, for the reasons a grading array meets most (squeue's %r)
WAITING_REASONS = {
    "JobArrayTaskLimit": "waits for a free place among the --max-parallel tasks",
    "Resources": "waits for free CPUs, memory or GPUs",
    "Priority": "other jobs come first",
    "ReqNodeNotAvail": "the requested nodes are unavailable",
    "PartitionTimeLimit": "the time limit exceeds the partition's (#SBATCH --time)",
}


class TaskState(NamedTuple):
    """A task's state in Slurm, and Slurm's reason for it ("" when it gives none)."""

    state: str
    reason: str = ""


class SlurmError(RuntimeError):
    """A Slurm command failed; the message holds its output."""


def _run(argv, env=None):
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"`{argv[0]}` is not on PATH: run this on a Slurm login node "
                         "(or start the test cluster: scripts/services/slurm.sh start)")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        raise SlurmError(f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def submit_array(tasks, max_parallel, arguments, log_folder, workdir, extra_options=(),
                 script=TEMPLATE):
    """Submits `script` (grade.sbatch) as a job array of `tasks` tasks, `max_parallel` at once.

    Returns the array's job id. `extra_options` (e.g. --partition=gpu) override the script's
    #SBATCH lines, as sbatch gives its command line precedence.
    """
    argv = ["sbatch", "--parsable", f"--array=0-{tasks - 1}%{max_parallel}",
            f"--chdir={workdir}", f"--output={Path(log_folder) / '%A_%a.out'}",
            *extra_options, str(script), *arguments]
    # the tasks run with the Python that submitted them (grade.sbatch), activated or not
    environment = {**os.environ, "AUTOGRADER_PYTHON": sys.executable}
    return _run(argv, environment).strip().split(";")[0]


def task_states(job_id):
    """{task_index: TaskState} of one job array, e.g. {0: TaskState("COMPLETED", "None"),
    3: TaskState("PENDING", "JobArrayTaskLimit")}.

    From squeue while the controller remembers the array, then from sacct."""
    if shutil.which("squeue") is None:
        raise SlurmError("`squeue` is not on PATH: run this on a Slurm login node")
    states = _parse(["squeue", "--noheader", "--array", "--states=all", f"--jobs={job_id}",
                     "--format=%i|%T|%r"])
    if not states and shutil.which("sacct"):
        states = _parse(["sacct", "--noheader", "--parsable2", "--allocations",
                         f"--jobs={job_id}", "--format=JobID,State"])
    return states


def _parse(argv):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return parse_states(result.stdout if result.returncode == 0 else "")


def parse_states(output):
    """{task_index: TaskState} from lines "JOBID_INDEX|STATE[|REASON]" (sacct gives no reason)."""
    states = {}
    for line in output.splitlines():
        task, state, reason = (line.split("|") + ["", ""])[:3]
        index = task.partition("_")[2]
        if index.isdigit():
            # sacct writes "CANCELLED by 0"
            states[int(index)] = TaskState(state.split()[0], reason.strip())
    return states


def describe_waiting(task_state):
    """A waiting task in words: its state, and Slurm's reason with what it means."""
    reason = task_state.reason
    if reason in ("", "None"):
        return task_state.state
    meaning = WAITING_REASONS.get(reason)
    return f"{task_state.state}: {reason}" + (f" ({meaning})" if meaning else "")


def cancel(task):
    """Cancels one task, e.g. "12_3" (the tests use it to kill a task midway)."""
    _run(["scancel", task])
