"""python -m exercises list | check NAME | check all: run the checkers on your exercises/ files.

Exit status 0 when every check passes, 1 when one fails (or is not written yet), 2 for an unknown name.
"""

import argparse
import sys

from common.errors import UserError, run_command

from .checks import EXERCISES, check, find


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)  # run_command prints `error: ...` and exits with 2


def main(argv=None) -> int:
    parser = Parser(prog="python -m exercises", description="Exercises with checkers (docs/exercises.md).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the exercises, in order")
    check_parser = commands.add_parser("check", help="check one exercise, or all of them")
    check_parser.add_argument("name", help="an exercise name from `list`, or all")
    args = parser.parse_args(argv)

    if args.command == "list":
        for number, exercise in enumerate(EXERCISES.values(), 1):
            print(f"{number:>2}. {exercise.name:<16} {exercise.path:<33} {exercise.about}")
        return 0
    names = list(EXERCISES) if args.name == "all" else [find(args.name).name]
    ok = True
    for name in names:
        result = check(name)
        print("\n".join(result.lines()))
        ok = ok and result.passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
