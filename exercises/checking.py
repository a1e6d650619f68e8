"""What every checker shares: an Exercise holds its checks, a check raises Failed with one line saying
what is wrong, and small helpers compare tensors and describe where they differ."""

from dataclasses import dataclass, field

import torch


class Failed(Exception):
    """A check found a mistake; the message is the one line the learner reads."""


@dataclass
class Exercise:
    name: str  # what `python -m exercises check NAME` takes
    stub: str  # the module in exercises/ the learner edits, e.g. "e01_attention"
    functions: tuple[str, ...]  # the functions the checks call, looked up on the module
    about: str  # one line for `python -m exercises list`
    checks: list = field(default_factory=list)  # (name, function(module)) in order

    @property
    def path(self) -> str:
        return f"exercises/{self.stub}.py"

    def check(self, name: str):
        """Decorator: register fn(module) as the next check; it raises Failed(...) when the module is wrong."""
        def register(fn):
            self.checks.append((name, fn))
            return fn
        return register


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def require_shape(what: str, got, expected) -> None:
    if not isinstance(got, torch.Tensor):
        raise Failed(f"{what} should be a tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected):
        raise Failed(f"wrong shape of {what} (expected {tuple(expected)}, got {tuple(got.shape)})")


def close(a, b, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=1e-4)


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def first_index(condition: torch.Tensor) -> tuple[int, ...]:
    """The index of the first True of a bool tensor, as a tuple of ints."""
    return tuple(int(i) for i in condition.nonzero()[0])


def matches_one_of(got, variants: dict[str, torch.Tensor], atol: float = 1e-5) -> str | None:
    """The message of the first wrong variant that got equals, or None: names a known mistake."""
    for message, value in variants.items():
        if close(got, value, atol):
            return message
    return None
