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


@pytest.mark.parametrize("content", ["truncated", "text", "pickled module", "tensor", "non-tensor values",
                                     "other shapes"])
def test_bad_weights_file_is_a_clear_error_naming_it(tmp_path, content):
    """Each bad file is a ValueError that names the file and says what is wrong, never a raw torch
    error; a pickled module is refused without being unpickled (weights_only=True)."""
    path = tmp_path / f"{content.replace(' ', '_')}.pth"
    if content == "truncated":
        torch.save({"conv_stem.weight": torch.zeros(32, 1, 3, 3), "bn1.weight": torch.ones(32)}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        match = "not a readable torch state dict.*truncated"
    elif content == "text":
        path.write_text("these are not weights\n")
        match = "not a readable torch state dict"
    elif content == "pickled module":
        torch.save(torch.nn.Linear(2, 2), path)  # the whole object, not its state dict
        match = "not a readable torch state dict.*state_dict"
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
        match = "expected a state dict.*found a Tensor"
    elif content == "non-tensor values":
        torch.save({"conv_stem.weight": [1.0, 2.0]}, path)
        match = "expected a state dict.*'conv_stem.weight' is a list"
    else:  # the right names with the wrong shapes (e.g. another EfficientNet size)
        torch.save({"conv_stem.weight": torch.zeros(8, 1, 3, 3)}, path)
        match = "weights do not fit.*size mismatch"
    with pytest.raises(ValueError, match=match) as info:
        ASDModel(n_sections=2, pretrained=path)
    assert str(path) in str(info.value)


def test_trains_one_step_with_gradients_everywhere():
    torch.manual_seed(0)
    m = ASDModel(n_sections=2).train()
    e, ml, pl = m(torch.randn(4, 224, 32))
    (ml.sum() + pl.sum()).backward()
    assert m.affine_scale.grad is not None and m.affine_bias.grad is not None
    assert m.backbone.conv_stem.weight.grad.abs().sum() > 0
