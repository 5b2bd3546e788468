"""One rule for "did this net learn?", and the lecture's promise built on it (the shape of the paper's Fig. 6).

Every page, preset text and benchmark that says a net learned, stalled or sits at chance asks this module, so the
Train page, Gradient flow, the lesion tab and the seed study never disagree about the same run. Pure Python: the
figures (which never import torch) use it too.

The rule is about the final training error on the fixed evaluation images (eval mode, no augmentation): a 10-class
net at chance errs 90% of the time; one that errs at most LEARNED_MAX_ERROR (80%) is at least 10 points better than
chance, more than the noise of 500 evaluation images (a standard error of about 2 points) can fake.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CHANCE_ERROR = 0.9  # 10 classes
LEARNED_MAX_ERROR = 0.80
DEGRADATION_MIN_GAP = 0.05  # plain-56 must end at least this far above plain-20 ...
FIX_MIN_GAP = 0.10  # ... and ResNet-56 at least this far below plain-56


def learned(train_error: float | None) -> bool | None:
    """True when the final training error (a fraction) is at most LEARNED_MAX_ERROR; None when there is none."""
    if train_error is None or train_error != train_error:  # None or NaN: no evaluation to judge by
        return None
    return train_error <= LEARNED_MAX_ERROR


def learning_phrase(train_error: float | None) -> str:
    """A few words for a run's card or a chart's caption: what its final training error says."""
    verdict = learned(train_error)
    if verdict is None:
        return "not evaluated yet"
    pct = f"{100 * train_error:.1f}% training error"
    if verdict:
        return f"learned ({pct})"
    return f"near chance ({pct}; chance is {100 * CHANCE_ERROR:.0f}%)"


@dataclass
class Fig6Verdict:
    holds: bool
    failures: list[str] = field(default_factory=list)


def fig6_shape(errors: dict[str, float]) -> Fig6Verdict:
    """Whether final training errors (in %, keyed by 'plain-20', 'plain-56', 'resnet-56'; missing nets are skipped)
    show the paper's Fig. 6: plain-56 learned, ended >= 5 points above plain-20, and ResNet-56 >= 10 points below it."""
    failures = []
    p20, p56, r56 = errors.get("plain-20"), errors.get("plain-56"), errors.get("resnet-56")
    if p56 is not None and not learned(p56 / 100):
        failures.append(f"plain-56 at {p56:.1f}% did not learn (> {100 * LEARNED_MAX_ERROR:.0f}%)")
    if p56 is not None and p20 is not None and p56 < p20 + 100 * DEGRADATION_MIN_GAP:
        failures.append(f"plain-56 only {p56 - p20:+.1f} points from plain-20")
    if p56 is not None and r56 is not None and r56 > p56 - 100 * FIX_MIN_GAP:
        failures.append(f"ResNet-56 only {p56 - r56:.1f} points below plain-56")
    return Fig6Verdict(not failures, failures)
