"""How long does the similarity report take for a class of N students, and for the bundled one?

    python benchmarks/similarity_speed.py --students 300

Makes a course folder as a grading run leaves it (the release, the solution, each student's
notebook under submitted/) with N synthetic submissions: each function written in one of three
correct styles (the reference, honest-independent-a, honest-independent-b) with every name
renamed at random, plus a cell of the student's own helpers drawn at random, so that most pairs
differ and some coincide. Then it times `write_similarity_report` on it (every pair: N(N-1)/2
comparisons), and on the bundled sample class (autograder/samples/submissions/), in this process
after
the imports that a grading run has made already (nbgrader, nbformat).
"""

import argparse
import io
import json
import keyword
import random
import shutil
import sys
import tempfile
import time
import tokenize
from pathlib import Path

import nbgrader.api  # noqa: F401 (a grading run has imported it before the report)

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from autograder.intake import collect  # noqa: E402
from autograder.samples import catalogue  # noqa: E402
from autograder.samples.copies import INDEPENDENT_A, INDEPENDENT_B  # noqa: E402

KEPT_NAMES = {"self", "ops", "math", "range", "zip", "bool", "True", "False", "None", "float",
              "len", "print", "sum", "min", "max", "abs", "enumerate", "list"}
HELPER_PARTS = ["total = sum(values)", "scale = max(abs(value) for value in values) or 1.0",
                "values = [value / scale for value in values]", "print(len(values), total)",
                "ordered = sorted(values)", "middle = ordered[len(ordered) // 2]",
                "counts = {}",
                "for value in values:\n        counts[value] = counts.get(value, 0) + 1",
                "return values", "return middle, total", "history = list(enumerate(values))"]


def renamed(source, generator):
    """The source with its own names replaced by random ones (Python's tokenizer)."""
    renames, tokens = {}, []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        text = token.string
        if token.type == tokenize.NAME and not keyword.iskeyword(text) and text not in KEPT_NAMES:
            text = renames.setdefault(text, f"{generator.choice('abcdefgxyz')}{len(renames)}")
        tokens.append((token.type, text))
    return tokenize.untokenize(tokens)


def helper_cell(generator):
    lines = generator.sample(HELPER_PARTS, generator.randint(3, 7))
    return f"def helper_{generator.randint(0, 99)}(values):\n    " + "\n    ".join(lines) + "\n"


def synthetic_notebook(generator, styles):
    answers = {name: renamed(generator.choice(styles)[name], generator) for name in styles[0]}
    notebook = catalogue._notebook_with(answers)
    notebook["cells"].insert(3, {"cell_type": "code", "execution_count": None, "id": "own",
                                 "metadata": {}, "outputs": [], "source": helper_cell(generator)})
    return notebook


def course_folder(root, notebooks):
    for folder in ("assignment", "solutions"):
        shutil.copytree(REPO_ROOT / folder / "ddim", root / folder / "ddim")
    for student, notebook in notebooks.items():
        target = root / "submitted" / student / "ddim"
        target.mkdir(parents=True)
        (target / "ddim.ipynb").write_text(json.dumps(notebook))
    return root


def timed_report(course_root, submissions=None):
    from autograder.similarity.report import write_similarity_report

    started = time.perf_counter()
    summary = write_similarity_report(course_root, submissions)
    return time.perf_counter() - started, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    generator = random.Random(arguments.seed)
    styles = [catalogue.solution_sources(), INDEPENDENT_A, INDEPENDENT_B]
    started = time.perf_counter()
    from autograder.similarity import report as similarity_report  # noqa: F401 (copydetect, matplotlib, jinja2)
    print(f"import of the report's modules: {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as temporary:
        notebooks = {f"student-{index:03d}": synthetic_notebook(generator, styles)
                     for index in range(arguments.students)}
        course = course_folder(Path(temporary) / "synthetic", notebooks)
        seconds, summary = timed_report(course)
        print(f"{arguments.students} synthetic students "
              f"({arguments.students * (arguments.students - 1) // 2} pairs): {seconds:.1f} s")
        print(f"  {summary}")

        bundled = Path(temporary) / "bundled"
        for folder in ("assignment", "solutions"):
            shutil.copytree(REPO_ROOT / folder / "ddim", bundled / folder / "ddim")
        for student in collect.student_folders(catalogue.SUBMISSIONS):
            collect.collect_student(catalogue.SUBMISSIONS, student, bundled)
        seconds, summary = timed_report(bundled, catalogue.SUBMISSIONS)
        students = len(list((bundled / "submitted").iterdir()))
        print(f"the bundled class ({students} students collected): {seconds:.1f} s")
        print(f"  {summary}")


if __name__ == "__main__":
    main()
