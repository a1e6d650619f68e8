"""The exercises in the order a learner meets them, and check(name, module): run one exercise's checks.

check() imports the learner's stub from exercises/ unless given another module (tests pass reference
solutions and deliberately wrong ones); each check either passes or gives one line saying what is wrong.
"""

import importlib
from dataclasses import dataclass, field

from common.errors import UserError

from .checking import Exercise, Failed
from .checks_attention import ATTENTION, MASK, POST_LN, PRE_LN
from .checks_bpe_lora import BPE, LORA
from .checks_llama import GQA, RMSNORM, ROPE
from .checks_objectives import LOSS, MLM, TOP_P

EXERCISES: dict[str, Exercise] = {e.name: e for e in (ATTENTION, MASK, PRE_LN, POST_LN, LOSS, MLM, TOP_P, BPE, LORA,
                                                      ROPE, RMSNORM, GQA)}


@dataclass
class Result:
    exercise: Exercise
    failures: list[str] = field(default_factory=list)  # one line per failing check
    not_written: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures and not self.not_written

    def lines(self) -> list[str]:
        name, n = self.exercise.name, len(self.exercise.checks)
        if self.not_written:
            return [f"{name}: not written yet: open {self.exercise.path}"]
        if self.passed:
            return [f"{name}: all {n} checks pass"]
        return [f"{name}: {line}" for line in self.failures] + \
            [f"{name}: {n - len(self.failures)} of {n} checks pass"]


def find(name: str) -> Exercise:
    if name not in EXERCISES:
        raise UserError(f"no exercise named {name!r}; choose one of {', '.join(EXERCISES)} or all "
                        "(`python -m exercises list`)")
    return EXERCISES[name]


def check(name: str, module=None) -> Result:
    """Run every check of the exercise `name` on `module` (default: the learner's exercises/<stub>.py)."""
    exercise = find(name)
    if module is None:
        module = importlib.import_module(f"exercises.{exercise.stub}")
    result = Result(exercise)
    missing = [fn for fn in exercise.functions if not callable(getattr(module, fn, None))]
    if missing:
        result.failures.append(f"{exercise.path} has no function {', '.join(missing)}: keep the stub's names")
        return result
    for check_name, run in exercise.checks:
        try:
            run(module)
        except NotImplementedError:
            result.not_written = True
            return result
        except Failed as failure:
            result.failures.append(f"{check_name}: {failure}")
        except Exception as err:  # the learner's code crashed: say where, in one line
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            result.failures.append(f"{check_name}: your code raised {type(err).__name__}: {message}")
    return result
