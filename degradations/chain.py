"""Chains of degradations applied in order, e.g. ``"gaussian_blur:3+gaussian_noise:4"``.

A chain is a ``+``-separated list of steps. A step ``name:k`` runs op ``name`` at severity
``k``; a bare ``name`` takes the severity the chain is called with, so
``"gaussian_blur:8+gaussian_noise"`` sweeps noise on top of heavy blur, and
``"gaussian_blur+gaussian_noise"`` raises both together. A chain whose steps are all fixed
ignores the severity it is called with (grids record it as 0).

Randomness: step ``i`` draws from ``rng_for(name, seed, step=i)``; the first step uses the
op's own stream, so a one-step chain equals the op itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from restorelab.degradations.base import DegradationResult, apply_level, get_degradation


@dataclass(frozen=True)
class ChainStep:
    """One step: a registered op and its fixed severity (None: the chain's severity)."""

    name: str
    severity: int | None = None


def parse_chain(spec: str) -> list[ChainStep]:
    """Parse and validate a chain spec; names and fixed severities are checked here."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty degradation chain {spec!r}")
    steps = []
    for part in spec.split("+"):
        name, colon, severity_text = part.strip().partition(":")
        if not name:
            raise ValueError(f"chain {spec!r}: empty step in {part!r}")
        op = get_degradation(name)
        severity = None
        if colon:
            try:
                severity = int(severity_text)
            except ValueError:
                raise ValueError(
                    f"chain {spec!r}: severity of {name!r} must be an integer, got "
                    f"{severity_text!r}"
                ) from None
            op.level(severity)  # raises with the valid range
        steps.append(ChainStep(op.name, severity))
    return steps


def chain_severities(spec: str) -> tuple[int, ...]:
    """Severities a chain can be called with: those valid for every swept step, or (0,)."""
    swept = [get_degradation(s.name) for s in parse_chain(spec) if s.severity is None]
    if not swept:
        return (0,)
    return tuple(k for k in swept[0].severities if all(k in op.severities for op in swept))


def apply_chain(image: np.ndarray, spec: str, severity: int, seed: int = 0) -> DegradationResult:
    """Apply chain ``spec`` at ``severity``; ``params["steps"]`` holds each step's parameters."""
    steps = parse_chain(spec)
    if any(s.severity is None for s in steps) and severity not in chain_severities(spec):
        raise ValueError(
            f"chain {spec!r}: severity {severity} not valid for its swept steps "
            f"(valid: {list(chain_severities(spec))})"
        )
    step_params = []
    current = image
    for index, step in enumerate(steps):
        op = get_degradation(step.name)
        step_severity = step.severity if step.severity is not None else severity
        result = apply_level(current, op.name, op.level(step_severity), seed, step=index or None)
        result.params["severity"] = int(step_severity)
        step_params.append(result.params)
        current = result.image
    return DegradationResult(
        image=current,
        params={"name": spec, "severity": int(severity), "seed": int(seed), "steps": step_params},
    )
