"""The project's own error types, and how a command reports them.

A `UserError` is a mistake in what the user gave: a flag, a file, a folder. It is raised where the input
enters, with a message that names the input and the way out, and every command (the scripts, each
`python -m ...`) catches it in `run_command`, which prints `error: <message>` on stderr and exits with
status 2, the status argparse uses for a bad command line. So does an allocation that fails (sizes that
cannot fit in memory, e.g. --n_embd 1000000). Anything else is a bug and keeps its traceback.
"""

import sys


class UserError(Exception):
    """A mistake in the user's input; the message says what is wrong and how to fix it."""


class CheckpointError(UserError, ValueError):
    """A checkpoint folder (minilm's or Hugging Face's) is missing, incomplete, corrupt or does not fit."""


class ConfigError(UserError, ValueError):
    """A flag or config value that cannot work, e.g. --val_fraction 0."""


class DataError(UserError, ValueError):
    """A data file that cannot be read or used as it is."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist (or is a folder where a file was expected)."""


class Terminated(KeyboardInterrupt):
    """Raised by the training loop's SIGTERM handler, so a terminated run saves as Ctrl-C does."""


EXIT_USER_ERROR = 2  # argparse's status for a bad command line
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM, what `docker stop` and cluster schedulers expect


def run_command(main, argv=None) -> int:
    """Run a command's main(argv) and turn its outcome into an exit status: 0, or 2 with `error: ...`
    for a UserError, 130 after Ctrl-C, 143 after SIGTERM. A main may return an exit status of its own."""
    try:
        result = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError) as err:  # sizes that cannot be allocated (--n_embd 1000000) are a
        if not is_out_of_memory(err):             # mistake too; any other RuntimeError is a bug
            raise
        what = (str(err).splitlines() or [type(err).__name__])[0][-200:]
        print(f"error: out of memory ({what}); ask for less: a smaller model, batch, context or number of samples",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated:
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def is_out_of_memory(err: BaseException) -> bool:
    """Python's MemoryError, torch's CPU allocator failing ("can't allocate memory") or CUDA's OutOfMemoryError."""
    return (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in str(err))
