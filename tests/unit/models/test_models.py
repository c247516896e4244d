"""Contract tests of the model zoo: every architecture builds, runs forward/backward, any H, W."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from components.core.registry import RegistryError
from components.models import MODELS, build_model, count_parameters
from components.models.dilated import ContextModule
from components.models.unet import valid_output_size

# Measured on 2 CPU cores, one thread: 0.3-6 s per architecture (fcn8s and unet_inceptionresnetv2 the
# slowest), about 45 s for the whole file, so none is marked slow.


@pytest.fixture(scope="module")
def param_log(tmp_path_factory: pytest.TempPathFactory):
    counts: dict[str, int] = {}
    yield counts
    path = tmp_path_factory.getbasetemp() / "model_param_counts.json"
    path.write_text(json.dumps(counts, indent=1, sort_keys=True))
    print(f"parameter counts written to {path}")


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


# networks built for a training patch (2D or 3D; tests/unit/models/test_monai_nets.py) are left out
ANY_SIZE = [n for n in MODELS.names() if "patch_size" not in inspect.signature(MODELS.get(n)).parameters]


@pytest.mark.parametrize("name", ANY_SIZE)
def test_forward_backward_any_size(name: str, param_log: dict[str, int]) -> None:
    torch.manual_seed(0)
    for in_ch in (1, 3):
        model = build_model(name, in_channels=in_ch, num_classes=3)
        model.train()  # batch 2: BatchNorm on ASPP's 1x1 pooled branch needs > 1 value per channel
        out = model(torch.randn(2, in_ch, 64, 64))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 64, 64)
        out.square().mean().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
        model.eval()
        with torch.no_grad():
            odd = model(torch.randn(1, in_ch, 50, 70))
        assert odd.shape == (1, 3, 50, 70) and torch.isfinite(odd).all()
    param_log[name] = count_parameters(model)
    print(f"{name}: {count_parameters(model):,} parameters")


def test_default_pipeline_model() -> None:
    model = build_model("unet", in_channels=1, num_classes=4, encoder_name="resnet18", encoder_weights=None)
    assert model(torch.randn(2, 1, 48, 40)).shape == (2, 4, 48, 40)


@pytest.mark.parametrize("name", ["unet", "inception_unet", "segnet", "fc_densenet56"])
def test_encoderless_models_accept_null_encoder_weights(name: str) -> None:
    assert build_model(name, 1, 2, encoder_weights=None) is not None
    with pytest.raises(ValueError, match="no pretrained encoder"):
        build_model(name, 1, 2, encoder_weights="imagenet")


def test_binary_single_channel_output() -> None:
    assert build_model("linknet", 1, 1)(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)


@pytest.mark.parametrize("name", ["unet", "inception_unet"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_deep_supervision(name: str, padding: str) -> None:
    if name == "inception_unet" and padding == "valid":
        with pytest.raises(ValueError, match="same"):
            build_model(name, 1, 2, padding=padding)
        return
    model = build_model(name, 1, 2, base_channels=8, depth=3, padding=padding, deep_supervision=True)
    outs = model.train()(torch.randn(2, 1, 45, 38))
    assert isinstance(outs, list) and len(outs) == 3  # main + one per coarser decoder level
    assert all(o.shape == (2, 2, 45, 38) for o in outs)
    assert isinstance(model.eval()(torch.randn(1, 1, 45, 38)), torch.Tensor)


def test_valid_padding_geometry_matches_paper() -> None:
    assert valid_output_size(572, 4) == 388  # Ronneberger et al., Fig. 1
    assert valid_output_size(571, 4) == 0  # odd size before a pooling does not fit


def test_deep_supervision_rejected_where_unsupported() -> None:
    with pytest.raises(ValueError, match="deep_supervision"):
        build_model("fpn", 1, 2, deep_supervision=True)


def test_unknown_name_and_kwarg_are_errors() -> None:
    with pytest.raises(RegistryError, match="Did you mean"):
        build_model("unett", 1, 2)
    with pytest.raises(ValueError, match="bogus"):
        build_model("fpn", 1, 2, bogus=1)  # smp alone would swallow it
    with pytest.raises(ValueError, match="bogus"):
        build_model("segnet", 1, 2, bogus=1)
    with pytest.raises(ValueError, match="in_channels"):
        build_model("unet", 0, 2)


def test_no_weight_download_with_random_init(tmp_path, monkeypatch) -> None:
    """encoder_weights=None must not fetch anything (smp, timm 'tu-' and efficientnet encoders)."""
    for var in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for kwargs in (
        {"encoder_name": "resnet18"},
        {"encoder_name": "tu-resnet18"},
        {"encoder_name": "efficientnet-b0"},
    ):
        build_model("unet", 1, 2, encoder_weights=None, **kwargs)
    assert not any(tmp_path.rglob("*")), "a weights cache was written"


def test_context_module_identity_init() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 4, 16, 16)  # class scores >= 0 pass the ReLUs unchanged
    y = ContextModule(4, "basic")(x)
    assert torch.allclose(y, x, atol=0.05)
    assert ContextModule(4, "large")(x).shape == x.shape
