"""What students receive: the course without the answers (`python -m autograder bundle`).

- `parts.py`: what each bundle holds: the student part, and the design space that the
  instructor releases after the deadline;
- `wheel.py`: builds a part's wheel of the library from a staging copy;
- `imports.py`: which library modules a file imports (a student part must not need the
  design space);
- `no_answers.py`: the check that no solution function is in a bundle, renamed or not;
- `build.py`: assembles a bundle folder; `command.py`: its command line.
"""
