"""A student's cell as IPython runs it: its magics and shell escapes, given safe meanings.

In Jupyter every cell goes through IPython's input transformers before Python compiles it:
`%matplotlib inline` becomes `get_ipython().run_line_magic('matplotlib', 'inline')`, `!pip list`
becomes `get_ipython().system('pip list')`, a `%%time` cell becomes one `run_cell_magic` call.
The runner uses the very same transformer (`TransformerManager`, from the kernel's IPython), and
`GraderShell` stands in for `get_ipython()`:
- `%time`, `%timeit`, `%%time`, `%%timeit`, `%%capture` run their code once, in the notebook's
  namespace (timing it would only cost time);
- `%matplotlib`, `%config`, `%load_ext`, `%autoreload`, `%precision`, `%pinfo` (`name?`) and
  the like change nothing that the grader looks at: they do nothing;
- `!cmd`, `%pip`, `%conda`, `%%bash` and other shell commands are not run: the sandbox has no
  network and nothing to install, and the feedback says so once;
- any other magic is skipped with a note in the feedback; the rest of its cell still runs.
`display(...)` does nothing (the grader shows no outputs); `print` goes to the runner's stderr.
"""

import linecache
import re

from IPython.core.inputtransformer2 import TransformerManager

RUN_ONCE_LINE_MAGICS = {"time", "timeit"}
RUN_ONCE_CELL_MAGICS = {"time", "timeit", "capture"}
HARMLESS_MAGICS = {"matplotlib", "config", "load_ext", "reload_ext", "autoreload", "aimport",
                   "precision", "pinfo", "pinfo2", "psearch", "who", "whos", "pprint",
                   "xmode", "env", "lsmagic", "magic", "history", "automagic", "pdb", "debug",
                   "tb", "reset_selective", "store", "page", "pdef", "pdoc", "psource", "pfile"}
SHELL_MAGICS = {"pip", "conda", "mamba", "sx", "system", "bash", "sh", "script", "cd", "ls",
                "cat", "mkdir", "rm", "cp", "mv", "writefile", "download"}
TIMEIT_OPTIONS = re.compile(r"^(\s*-[nrp]\s*\d+|\s*-[tcqo])*\s*")
SHELL_NOTE = "shell commands are not run by the grader (`!...`, %pip, %%bash and the like)"

_transformer = TransformerManager()


def transform(source):
    """The Python source that IPython would run for this cell."""
    return _transformer.transform_cell(source)


def compile_cell(source, filename, first_line=1):
    """Compiles a cell as IPython does: the student's own text goes into linecache, so that
    tracebacks show their lines and AutoGraph can read a function's source for tf.function.
    IPython's line transforms keep each line where it was, so line numbers still match."""
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, ["\n"] * (first_line - 1) + lines, filename)
    return compile("\n" * (first_line - 1) + transform(source), filename, "exec")


class GraderShell:
    """What `get_ipython()` returns in the grader: the magics' safe meanings (module docstring).

    `notes` collects, once each, what the feedback should say about the magics it skipped.
    """

    def __init__(self, namespace):
        self.namespace = namespace
        self.notes = []
        self.filename = "<cell>"

    def _note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def run_line_magic(self, magic_name, line, _stack_depth=1):
        if magic_name in RUN_ONCE_LINE_MAGICS:
            statement = TIMEIT_OPTIONS.sub("", line)  # `%timeit -n 10 -r 3 f(x)` runs f(x)
            exec(compile(transform(statement), self.filename, "exec"), self.namespace)
        elif magic_name in SHELL_MAGICS:
            self._note(SHELL_NOTE)
        elif magic_name not in HARMLESS_MAGICS:
            self._note(f"the grader does not run %{magic_name}: that line was skipped, and the "
                       f"rest of its cell ran")

    def run_cell_magic(self, magic_name, line, cell):
        if magic_name in RUN_ONCE_CELL_MAGICS:
            # the cell's text starts below its %% line
            exec(compile_cell(cell, self.filename, first_line=2), self.namespace)
        elif magic_name in SHELL_MAGICS:
            self._note(SHELL_NOTE)
        else:
            self._note(f"the grader does not run %%{magic_name} cells: that cell was skipped")

    def system(self, command):
        self._note(SHELL_NOTE)

    def getoutput(self, command, split=True, depth=0):
        self._note(SHELL_NOTE)
        return []

    def magic(self, line):
        """The old spelling, `get_ipython().magic("matplotlib inline")`."""
        name, _, rest = line.lstrip("%").partition(" ")
        return self.run_line_magic(name, rest)


def display(*objects, **options):
    """IPython's `display`: the grader shows no outputs, so it shows nothing."""


def ipython_names(namespace):
    """The names that IPython's kernel gives every cell: get_ipython and display."""
    shell = GraderShell(namespace)
    return {"get_ipython": lambda: shell, "display": display}, shell
