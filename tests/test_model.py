"""ASDModel: shapes, heads as specified, spec round trip, pretrained handling (never downloads)."""
import pytest
import torch

from minasd.model import ASDModel


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ASDModel(n_sections=6).eval()


def test_shapes_for_both_input_layouts(model):
    x = torch.randn(3, 224, 126)
    with torch.no_grad():
        e, m, p = model(x)
        e4, m4, p4 = model(x[:, None])
    assert e.shape == (3, 128) and m.shape == (3,) and p.shape == (3, 6)
    torch.testing.assert_close(e, e4)
    torch.testing.assert_close(m, m4)
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(2, 2, 224, 126))


def test_heads_are_what_the_docstring_says(model):
    x = torch.randn(2, 224, 126)
    with torch.no_grad():
        e, m, p = model(x)
        torch.testing.assert_close(m, model.affine_scale * e.square().sum(1) / 128 + model.affine_bias)
        torch.testing.assert_close(p, model.g_product(e))
    assert model.backbone.num_features == 1280
    kinds = [type(layer).__name__ for layer in model.projection]
    assert kinds == ["Linear", "BatchNorm1d", "PReLU", "Linear"]
    conv = model.backbone.conv_stem.weight
    assert conv.shape[1] == 1  # one input channel


def test_spec_round_trip_reproduces_outputs(model):
    spec = model.to_spec()
    assert spec == {"n_sections": 6, "emb_dim": 128, "backbone": "efficientnet_b0", "pretrained": None}
    clone = ASDModel.from_spec(spec)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    x = torch.randn(2, 224, 126)
    with torch.no_grad():
        for a, b in zip(model(x), clone(x)):
            torch.testing.assert_close(a, b)


def test_local_weights_file_with_three_channel_stem(tmp_path, model):
    import timm

    rgb = timm.create_model("efficientnet_b0", pretrained=False, in_chans=3, num_classes=1000)
    path = tmp_path / "b0.pth"
    torch.save(rgb.state_dict(), path)
    m = ASDModel(n_sections=3, pretrained=path)
    stem = rgb.state_dict()["conv_stem.weight"].sum(1, keepdim=True)
    torch.testing.assert_close(m.backbone.conv_stem.weight.detach(), stem)
    torch.testing.assert_close(m.backbone.blocks[0][0].conv_dw.weight.detach(),
                               rgb.state_dict()["blocks.0.0.conv_dw.weight"])
    assert m.to_spec()["pretrained"] == str(path)


def test_pretrained_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ASDModel(n_sections=2, pretrained=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"foo.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="do not fit"):
        ASDModel(n_sections=2, pretrained=bad)

    import minasd.model as mm

    original = mm._create_backbone

    def no_hub(name, pretrained_hub=False):
        if pretrained_hub:
            raise OSError("network unreachable")
        return original(name)

    monkeypatch.setattr(mm, "_create_backbone", no_hub)
    with pytest.raises(RuntimeError, match="hub access"):
        ASDModel(n_sections=2, pretrained="noisy_student")


def test_trains_one_step_with_gradients_everywhere():
    torch.manual_seed(0)
    m = ASDModel(n_sections=2).train()
    e, ml, pl = m(torch.randn(4, 224, 32))
    (ml.sum() + pl.sum()).backward()
    assert m.affine_scale.grad is not None and m.affine_bias.grad is not None
    assert m.backbone.conv_stem.weight.grad.abs().sum() > 0
