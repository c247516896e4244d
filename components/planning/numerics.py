"""The training step's precision and memory layout (``train.bf16``, ``train.channels_last``).

bf16 autocast runs convolutions on bf16 matrix units where the device has them. On a 2-core Intel
Xeon CPU with AMX (2026-12-07) a training step of the ResNet-18-encoder U-Net on 384 x 352 took
0.45 s against 1.03 s in float32, the 8-filter dynamic U-Net's 0.17 s against 0.33 s; a CPU without
bf16 units emulates it, slower than float32. The channels-last layout sped up the encoder (0.34 s
with bf16) but not the dynamic U-Net (instance norm), and on 128 x 128 patches the encoder gained
1.3x from bf16 where it gained 3x on the whole image. So nothing is assumed on the CPU: each
network family's first candidate is measured at its planned patch and batch in every combination the
user left ``auto``, and the family trains in the fastest one:

- bf16 only when at least :data:`BF16_GAIN` faster than float32 (it rounds activations to an 8-bit
  mantissa, a cost worth paying for real speed only; weights and reductions stay float32);
- channels-last only when at least :data:`LAYOUT_GAIN` faster than the default layout.

On CUDA: bf16 where the GPU supports it (tensor cores; nnU-Net trains in mixed precision too) and the
default layout, not measured (a GPU's speed-ups are known and a few-step timing of them is noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from components.planning.decision import Decision

BF16_GAIN = 1.15
LAYOUT_GAIN = 1.05

StepAt = Callable[[bool, bool], float]  # seconds of a training step with (bf16, channels_last)


@dataclass(frozen=True)
class Numerics:
    """The planned ``train.bf16`` and ``train.channels_last``."""

    bf16: Decision
    channels_last: Decision

    @property
    def mode(self) -> tuple[bool, bool]:
        """(bf16, channels_last) as used."""
        return bool(self.bf16.value), bool(self.channels_last.value)


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def choose_numerics(
    device: str,
    step_at: StepAt,
    what: str,
    bf16_yours: bool | None = None,
    layout_yours: bool | None = None,
    cuda_bf16: Callable[[], bool] = _cuda_bf16,
) -> Numerics:
    """Precision and layout for a network family (see the module docstring).

    Args:
        device: ``cpu`` or ``cuda``.
        step_at: Measures the family's first candidate in a (bf16, channels_last) combination.
        what: How the reasons name that candidate ("the dynunet 32 step on 384 x 352").
        bf16_yours, layout_yours: The user's values (None: planned).
    """
    if device == "cuda":
        supported = cuda_bf16()
        bf16 = (
            Decision(bf16_yours, "yours")
            if bf16_yours is not None
            else Decision(
                supported,
                "bf16 autocast: the GPU supports it (tensor cores; float32 weights)"
                if supported
                else "float32: this GPU has no bf16 support",
            )
        )
        layout = (
            Decision(layout_yours, "yours")
            if layout_yours is not None
            else Decision(False, "the default layout on CUDA (not measured)")
        )
        return Numerics(bf16, layout)
    if bf16_yours is not None and layout_yours is not None:
        return Numerics(Decision(bf16_yours, "yours"), Decision(layout_yours, "yours"))
    precisions = [bf16_yours] if bf16_yours is not None else [False, True]
    layouts = [layout_yours] if layout_yours is not None else [False, True]
    times = {(p, c): step_at(p, c) for p in precisions for c in layouts}

    def best(p: bool) -> float:
        return min(times[(p, c)] for c in layouts)

    bf16 = (
        Decision(bf16_yours, "yours")
        if bf16_yours is not None
        else _faster(
            best(True), best(False), BF16_GAIN, what, ("bf16 autocast", "float32"), "; float32 weights"
        )
    )
    p = bool(bf16.value)
    layout = (
        Decision(layout_yours, "yours")
        if layout_yours is not None
        else _faster(
            times[(p, True)], times[(p, False)], LAYOUT_GAIN, what, ("channels-last", "the default layout")
        )
    )
    return Numerics(bf16, layout)


def _faster(
    option_s: float, plain_s: float, gain_needed: float, what: str, names: tuple[str, str], note: str = ""
) -> Decision:
    """Whether the option (``names[0]``) is taken over the plain way (``names[1]``): when its measured
    step is at least ``gain_needed`` times faster."""
    gain = plain_s / option_s if option_s > 0 else 1.0
    on = gain >= gain_needed
    measured = f"{what} measured {option_s:.3f} s with {names[0]} against {plain_s:.3f} s with {names[1]}"
    if on:
        return Decision(True, f"{names[0]}: {measured} ({gain:.2f}x >= {gain_needed}x{note})")
    return Decision(False, f"{names[1]}: {measured} ({gain:.2f}x < the {gain_needed}x it needs)")
