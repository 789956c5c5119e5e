"""`python -m autograder COMMAND`: the instructor's commands. `--help` lists them.

Each command is a module with `HELP`, `add_arguments(parser)` and `run(args)` (its exit status);
a command module imports nothing heavy at its top, so that `--help` is instant.
"""

import argparse
import importlib
import sys

COMMANDS = {
    "grade": "autograder.grading.command",
    "demo": "autograder.grading.demo_command",
    "bundle": "autograder.bundle.command",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description="The instructor's commands.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {name: importlib.import_module(module) for name, module in COMMANDS.items()}
    for name, module in modules.items():
        module.add_arguments(commands.add_parser(name, help=module.HELP,
                                                 description=module.HELP))
    arguments = parser.parse_args(argv)
    return modules[arguments.command].run(arguments)


if __name__ == "__main__":
    sys.exit(main())
