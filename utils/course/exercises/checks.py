"""The primitives of every self-check (in the spirit of CS231n's ``rel_error``).

A self-check cell calls a checker on the student's answer; it prints a short verdict and raises
``AssertionError`` with a hint when the answer is wrong, so a notebook run fails loudly. The
checkers of each notebook live in their own module (``nb01`` … ``nb06``); this module holds what
they share: tolerant comparisons (relative to the answer's scale), the call of the student's
function (a stub becomes a hint), the diagnosis of typical mistakes, and :func:`refusing`, which
makes ``utils``' own implementation of the piece an exercise asks for refuse to run while the
student's function is checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch


def rel_error(x, y) -> float:
    """Maximum relative error ``max |x − y| / max(1e-8, |x| + |y|)`` (CS231n's definition)."""
    x = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    y = y.detach().cpu().double().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"Shapes differ: {x.shape} vs {y.shape}.")
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def check_close(name: str, value, expected, *, tol: float = 1e-5, hint: str = "") -> None:
    """Assert that ``value`` matches ``expected`` to relative error ``tol``; print a verdict."""
    if value is None:
        raise AssertionError(f"{name}: no answer yet — replace the None in the exercise cell.")
    err = rel_error(value, expected)
    if err > tol:
        raise AssertionError(f"{name}: relative error {err:.2e} > {tol:.0e}. {hint}".strip())
    print(f"✓ {name}: correct (relative error below {tol:.0e})")


def check_true(name: str, condition: bool, *, hint: str = "") -> None:
    """Assert a condition about the student's answer; print a verdict."""
    if not bool(condition):
        raise AssertionError(f"{name}: not yet. {hint}".strip())
    print(f"✓ {name}: correct")


def check_answered(name: str, **answers) -> None:
    """Raise ``AssertionError`` (a hint, not a traceback) while any answer is still ``None``.

    The student edition replaces each worked solution by a stub that leaves its answers ``None``;
    a self-check calls this first so that the student reads what to do.
    """
    missing = [k for k, v in answers.items() if v is None]
    if missing:
        raise AssertionError(f"{name}: no answer yet — set {', '.join(missing)} in the exercise cell.")


def _call(name: str, fn, *args, **kwargs):
    """Call the student's function; a stub (``None`` or ``NotImplementedError``) becomes a hint."""
    if fn is None or not callable(fn):
        raise AssertionError(f"{name}: no function yet — define it in the exercise cell.")
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"{name}: not written yet — replace `raise NotImplementedError` "
                             "in the exercise cell with your code.") from None
    if out is None:
        raise AssertionError(f"{name}: your function returned None — did you forget `return`?")
    return out


def _as_tensor(name: str, value, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{name}: expected a torch.Tensor, got {type(value).__name__}.")
    value = value.detach().float().cpu()
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{name}: expected shape {tuple(shape)}, got {tuple(value.shape)}.")
    return value


def _scaled_error(x: torch.Tensor, y: torch.Tensor) -> float:
    """``max |x − y| / max |y|``: an error relative to the answer's scale, so that entries near
    zero (where float rounding dominates any relative error) do not decide."""
    return float((x.double() - y.double()).abs().max() / y.double().abs().max().clamp_min(1e-12))


def _diagnose(name: str, value: torch.Tensor, expected: torch.Tensor, tol: float,
              wrong: dict[str, torch.Tensor], hint: str) -> None:
    """Pass if ``value`` matches ``expected`` to ``tol`` (relative to the scale of ``expected``);
    else name the typical mistake that it matches, if any."""
    expected = expected.detach().float().cpu()
    if _scaled_error(value, expected) <= tol:
        print(f"✓ {name}: correct")
        return
    for mistake, candidate in wrong.items():
        candidate = candidate.detach().float().cpu()
        if candidate.shape == value.shape and _scaled_error(value, candidate) <= tol:
            raise AssertionError(f"{name}: {mistake}")
    raise AssertionError(f"{name}: does not match the reference. {hint}".strip())


def check_choice(name: str, answer, correct: str, hints: dict[str, str] | None = None) -> None:
    """Check a multiple-choice answer (a letter); a wrong letter gets its own hint."""
    check_answered(name, answer=answer)
    letter = str(answer).strip().lower()
    if letter != correct.lower():
        hint = (hints or {}).get(letter, "Re-read the options and test them against your computation.")
        raise AssertionError(f"{name}: not ({letter}). {hint}")
    print(f"✓ {name}: correct")


# --- the library's own implementation refuses to run while the student's function is checked -----

class ExerciseRefusal(AssertionError):
    """Raised by a ``utils`` function that an exercise asks the student to write, when the student's
    function calls it (or *is* it) during the self-check. An ``AssertionError``, so that the
    notebook shows a hint, not a traceback from deep inside the library."""


def _refusing_code(fn, exercise: str):
    qualname = f"{fn.__module__}.{fn.__qualname__}"
    whose = "the course's own" if fn.__module__.split(".")[0] == "utils" else "a library's"
    message = (f"{exercise} asks you to write this yourself: your function called "
               f"{qualname}, {whose} implementation. Write the steps with torch instead.")
    namespace: dict = {}
    exec(f"def {fn.__name__}(*args, **kwargs):\n"
         f"    raise __import__({__name__!r}, fromlist=['ExerciseRefusal'])"
         f".ExerciseRefusal({message!r})\n", namespace)
    return namespace[fn.__name__].__code__


@contextmanager
def refusing(exercise: str, *functions: Callable) -> Iterator[None]:
    """Inside the block, each of ``functions`` raises :class:`ExerciseRefusal` when called.

    The function's code object is swapped, so the refusal holds however the student reached it:
    ``utils.saliency.saliency_map``, a name imported earlier with ``from … import``, or the function
    handed in as the answer. The reference answer is computed before the block; the code is restored
    on exit, also when the block raises. A decorated function is refused at its innermost
    (``__wrapped__``) function. ``exercise`` names the exercise in the message ("Exercise 1").

    Raises:
        TypeError: an entry of ``functions`` is not a plain Python function.
    """
    targets = []
    for fn in functions:
        inner = inspect.unwrap(fn)
        if not inspect.isfunction(inner) or inner.__code__.co_freevars:
            raise TypeError(f"refusing() takes module-level Python functions, got {fn!r}.")
        targets.append((inner, inner.__code__, _refusing_code(inner, exercise)))
    try:
        for inner, _, refused in targets:
            inner.__code__ = refused
        yield
    finally:
        for inner, original, _ in targets:
            inner.__code__ = original
