"""The check that no solution function is in a bundle, however it is renamed or restyled.

Every Python file, every notebook code cell and every fenced Python block of a Markdown file or
cell in the bundle is parsed, the files inside its wheels included. Each function's body is
reduced to its shape: the tree of its statements and expressions with every name, attribute
name and constant replaced by one placeholder, docstrings dropped (comments are not in the tree).
A function holds an answer when the solution function's statements occur in its body in order,
shape for shape. So a renamed copy of `denoise` matches, and so does the schedule's formula
written as a class method (`self.config.max_signal_rate` as `self.max_signal_rate`, or as its
number). The solution functions are every variant's (`autograder/assignment/variant_solutions.py`):
the
solution notebook's, and the schedules and denoise functions that the other variants ask for.
"""

import ast
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment.variant_solutions import variant_solution_sources
from diffusion_course.variants import VARIANTS

OPERANDS = (ast.Name, ast.Attribute, ast.Constant)
# IPython syntax that is not Python: `%magic`, `!shell`, `?help`
IPYTHON_LINE = re.compile(r"^\s*[%!?]")
FENCED_PYTHON = re.compile(r"^```(?:python|py)\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Finding:
    """A function in the bundle that holds a solution function, or code that could not be read."""

    where: str  # the file (a wheel's member as WHEEL!MEMBER), and the cell or block
    line: int
    function: str  # its name in the bundle
    answer: str  # the solution function it holds; "" when the code could not be parsed

    def __str__(self):
        if not self.answer:
            return f"{self.where}: cannot be parsed, so it cannot be checked for answers"
        return (f"{self.where}, line {self.line}: {self.function}() holds the solution's "
                f"{self.answer}()")


def shape(node):
    """The node's tree with every name, attribute and constant as one placeholder."""
    if isinstance(node, OPERANDS):
        return "operand"
    fields = []
    for name, value in ast.iter_fields(node):
        if name == "ctx":
            continue
        if isinstance(value, list):
            fields.append(tuple(shape(item) for item in value if isinstance(item, ast.AST)
                                and not _is_string_statement(item)))
        elif isinstance(value, ast.AST):
            fields.append(shape(value))
    return (type(node).__name__, tuple(fields))


def _is_string_statement(node):
    """A docstring, or a string on a line of its own (a comment in disguise)."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
        and isinstance(node.value.value, str)


def body_shape(function):
    return [shape(statement) for statement in function.body
            if not _is_string_statement(statement)]


def _occurs_in_order(needle, haystack):
    remaining = iter(haystack)
    return all(any(item == candidate for candidate in remaining) for item in needle)


def answer_shapes(sources=None):
    """{solution function name: [its body's shapes]}, of every variant's solution by default."""
    every_solution = [sources] if sources else [variant_solution_sources(name)
                                                for name in VARIANTS]
    shapes = {}
    for solution in every_solution:
        for name, source in solution.items():
            functions = [node for node in ast.walk(ast.parse(source))
                         if isinstance(node, ast.FunctionDef) and node.name == name]
            found = shapes.setdefault(name, [])
            if body_shape(functions[0]) not in found:
                found.append(body_shape(functions[0]))
    return shapes


def answers_in_source(source, where, answers):
    """Findings in one piece of Python source; `where` names it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return [Finding(where, 0, "", "")]
    return [Finding(where, node.lineno, node.name, answer)
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for answer, answer_bodies in answers.items()
            if any(_occurs_in_order(answer_body, body_shape(node))
                   for answer_body in answer_bodies)]


def _without_ipython_lines(source):
    return "\n".join("" if IPYTHON_LINE.match(line) else line for line in source.splitlines())


def _markdown_blocks(text):
    """The fenced Python blocks of a Markdown text that parse (a shell block tagged python
    would only be noise)."""
    for block in FENCED_PYTHON.findall(text):
        try:
            ast.parse(block)
        except SyntaxError:
            continue
        yield block


def python_pieces(name, data):
    """[(where, source)] of one file's Python: a .py file, a notebook's cells, Markdown's
    fenced blocks; a wheel or zip is opened and each member read the same way."""
    suffix = Path(name).suffix
    if suffix in (".whl", ".zip"):
        with zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data)) as archive:
            return [(f"{name}!{where}", source) for member in archive.namelist()
                    for where, source in python_pieces(member, archive.read(member))]
    if isinstance(data, Path):
        data = data.read_bytes()
    if suffix == ".py":
        return [(name, data.decode("utf-8", errors="replace"))]
    if suffix == ".md":
        return [(f"{name} block {index}", block) for index, block
                in enumerate(_markdown_blocks(data.decode("utf-8", errors="replace")), 1)]
    if suffix == ".ipynb":
        pieces = []
        for index, cell in enumerate(json.loads(data)["cells"], 1):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            if cell["cell_type"] == "code":
                pieces.append((f"{name} cell {index}", _without_ipython_lines(source)))
            elif cell["cell_type"] == "markdown":
                pieces += [(f"{name} cell {index} block {number}", block)
                           for number, block in enumerate(_markdown_blocks(source), 1)]
        return pieces
    return []


def find_answers(bundle, answers=None):
    """Every place in the bundle folder that holds a solution function; [] for a clean one."""
    answers = answers or answer_shapes()
    bundle = Path(bundle)
    findings = []
    for path in sorted(bundle.rglob("*")):
        if path.is_file():
            for where, source in python_pieces(path.relative_to(bundle).as_posix(), path):
                findings += answers_in_source(source, where, answers)
    return findings
