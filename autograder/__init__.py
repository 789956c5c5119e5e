"""The instructor side of the course: the solution, the hidden tests and their sandbox."""

from pathlib import Path

# the graded test cell of each function the student writes, and of the training run
TEST_CELLS = {
    "diffusion_schedule": "test_diffusion_schedule",
    "denoise": "test_denoise",
    "reverse_diffusion": "test_reverse_diffusion",
}
TRAINING_TEST_CELL = "test_training_kid"
# the functions the student writes, in the notebook's order: here, where the runner (which may not
# import the solution) and the solution's reader (which must not import Keras) both see them
FUNCTION_NAMES = tuple(TEST_CELLS)

# Where the judge writes what it decided about a student: <course root>/grader_records/
# <student>/<assignment>/, a folder that no sandbox shows, so student code cannot write,
# replace or link anything there.
RECORDS_FOLDER = "grader_records"
VERDICTS_FILE = "verdicts.json"  # {grade_id: {"passed", "score_fraction", "message"}}
GRADER_ERROR_FILE = "grader_error.json"  # {"reason": ...}: the grader failed, not the student


def records_folder(course_root, student, assignment):
    return Path(course_root) / RECORDS_FOLDER / student / assignment
