"""Model registry, the pad-to-stride wrapper and keyword checking shared by all architectures.

Every registered factory has the signature ``factory(in_channels, num_classes, **kwargs) -> nn.Module``
and returns a module whose forward maps (N, in_channels, H, W) to logits (N, num_classes, H, W) for any
H, W. Networks that need H, W divisible by their total stride are wrapped in :class:`PadToStride`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from components.core.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


class PadToStride(nn.Module):
    """Pads the input up to a multiple of ``stride`` and crops every output back.

    Reflection padding is used where the input is large enough (it avoids a hard zero border the
    network could learn from); tiny inputs fall back to replicate padding.

    Args:
        net: The wrapped network.
        stride: Required divisor of H and W.

    Shape:
        input (N, C, H, W) -> output (N, K, H, W), or a list of such tensors (deep supervision).
    """

    def __init__(self, net: nn.Module, stride: int) -> None:
        super().__init__()
        self.net = net
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, pad, mode=mode)
        out = self.net(x)
        if not (ph or pw):
            return out
        top, left = ph // 2, pw // 2
        if isinstance(out, list | tuple):
            return [o[..., top : top + h, left : left + w] for o in out]
        return out[..., top : top + h, left : left + w]


def check_kwargs(model: str, kwargs: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise a ValueError naming the model and any keyword it does not accept.

    Raises:
        ValueError: If ``kwargs`` contains names outside ``allowed``.
    """
    allowed = set(allowed)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"model '{model}' got unknown argument(s) {unknown}; accepted: {sorted(allowed)}")


def drop_encoder_weights(model: str, kwargs: dict) -> dict:
    """Accept ``encoder_weights=None`` on architectures without a pretrained encoder (so one params
    block works for every model); any other value is an error.

    Raises:
        ValueError: ``encoder_weights`` is set to something other than None.
    """
    weights = kwargs.pop("encoder_weights", None)
    if weights is not None:
        raise ValueError(f"model '{model}' has no pretrained encoder; set encoder_weights to null")
    return kwargs


def accepted_kwargs(fn: Callable, exclude: Sequence[str] = ()) -> list[str]:
    """Explicit keyword parameters of ``fn`` (its ``**kwargs`` catch-all and ``exclude`` removed)."""
    params = inspect.signature(fn).parameters.values()
    skip = {"self", *exclude}
    return [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in skip]


def conv_bn_relu(
    cin: int, cout: int, kernel: int = 3, padding: int | None = None, bn: bool = True
) -> nn.Sequential:
    """Conv -> (BatchNorm) -> ReLU; ``padding`` defaults to 'same' for odd kernels.

    Shape:
        (N, cin, H, W) -> (N, cout, H', W').
    """
    pad = kernel // 2 if padding is None else padding
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=pad, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
