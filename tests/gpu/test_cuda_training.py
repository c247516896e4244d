"""CUDA path: bf16 autocast training steps and the predictor on the GPU (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from components.losses import build_loss
from components.models import build_model
from components.training.device import autocast, resolve_device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_bf16_training_reduces_loss_on_cuda() -> None:
    device = resolve_device("auto")
    assert device.type == "cuda"
    torch.manual_seed(0)
    model = build_model("unet_resnet18", 1, 3, encoder_weights=None).to(device)
    loss_fn = build_loss([{"name": "dice"}, {"name": "ce"}], 3)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(4, 1, 96, 80, device=device)
    y = (x[:, 0] > 0.5).long() + (x[:, 0] > 1.5).long()
    losses = []
    for _ in range(30):
        with autocast(device, bf16=True):
            out = model(x)
            assert out.dtype == torch.bfloat16
            loss = loss_fn(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] * 0.7, losses
