"""dlbook.models: published parameter counts, output shapes, LeNet's C3 table, LRN, summary rows.

The networks are built once per module in float32 (torch's usual dtype; conftest makes float64
the default for the numpy oracle tests) and run once, on one image of the documented size.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import TIGHT
from dlbook.models import (C3_TABLE, BasicBlock, Bottleneck, Inception, PartialConv2d, RBFOutput,
                           Subsampling, alexnet, googlenet, lenet5, nin, receptive_field_layers,
                           resnet18, resnet34, resnet50, summary, vgg16, count_macs)
from dlbook.models.alexnet import ALEXNET_LRN
from dlbook.models.googlenet import INCEPTION_TABLE
from dlbook.models.lenet import LeNetSquash
from dlbook.receptive_field import receptive_field


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# name: (factory, keywords, input shape, published parameter count)
NETWORKS = {
    "lenet5": (lenet5, {}, (1, 1, 32, 32), 60_840),
    "lenet5-modern": (lenet5, dict(modern=True), (1, 1, 32, 32), 61_706),
    "alexnet": (alexnet, {}, (1, 3, 227, 227), 60_965_224),
    "alexnet-ungrouped": (alexnet, dict(grouped=False), (1, 3, 227, 227), 62_378_344),
    "vgg16": (vgg16, {}, (1, 3, 224, 224), 138_357_544),
    # NIN and GoogLeNet as documented in their modules (no single published total to quote)
    "nin": (nin, {}, (1, 3, 224, 224), 7_595_176),
    "nin-cifar10": (nin, dict(variant="cifar10", num_classes=10), (1, 3, 32, 32), 966_986),
    "googlenet": (googlenet, {}, (1, 3, 224, 224), 6_998_552),
    "resnet18": (resnet18, {}, (1, 3, 224, 224), 11_689_512),
    "resnet34": (resnet34, {}, (1, 3, 224, 224), 21_797_672),
    "resnet50": (resnet50, {}, (1, 3, 224, 224), 25_557_032),
}


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request):
    """(name, model, summary rows): each network built and run once, then released."""
    factory, kwargs, shape, _ = NETWORKS[request.param]
    torch.manual_seed(0)
    with default_dtype(torch.float32):
        model = factory(**kwargs)
    rows = summary(model, shape, print_table=False)
    yield request.param, model, rows
    del model


def test_parameter_count_is_the_published_one(network):
    name, model, rows = network
    assert n_params(model) == NETWORKS[name][3]
    assert sum(r.num_params for r in rows) == n_params(model)  # every parameter is in a row
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_output_shape_on_the_documented_input(network):
    name, model, rows = network
    num_classes = NETWORKS[name][1].get("num_classes", 10 if name.startswith("lenet") else 1000)
    assert rows[-1].output_shape == (1, num_classes)


# Output shapes of the pooling (subsampling) layers, from the papers' tables, VGG-16's
# 12-step pipeline and Table 3.1 (inception branches' 3x3/1 pools left out).
POOLED = {
    "lenet5": [(1, 6, 14, 14), (1, 16, 5, 5)],
    "lenet5-modern": [(1, 6, 14, 14), (1, 16, 5, 5)],
    "alexnet": [(1, 96, 27, 27), (1, 256, 13, 13), (1, 256, 6, 6)],
    "alexnet-ungrouped": [(1, 96, 27, 27), (1, 256, 13, 13), (1, 256, 6, 6)],
    "vgg16": [(1, 64, 112, 112), (1, 128, 56, 56), (1, 256, 28, 28), (1, 512, 14, 14),
              (1, 512, 7, 7)],
    "nin": [(1, 96, 27, 27), (1, 256, 13, 13), (1, 384, 6, 6)],
    "nin-cifar10": [(1, 96, 16, 16), (1, 192, 8, 8)],
    "googlenet": [(1, 64, 56, 56), (1, 192, 28, 28), (1, 480, 14, 14), (1, 832, 7, 7),
                  (1, 1024, 1, 1)],
    "resnet18": [(1, 64, 56, 56), (1, 512, 1, 1)],
    "resnet34": [(1, 64, 56, 56), (1, 512, 1, 1)],
    "resnet50": [(1, 64, 56, 56), (1, 2048, 1, 1)],
}


def test_pooled_shapes_follow_the_published_tables(network):
    name, _, rows = network
    pooled = [r.output_shape for r in rows
              if r.kind in ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Subsampling")
              and "branch" not in r.name]
    if name.startswith("nin"):  # the last one is the global average pooling: one score a class
        assert pooled.pop() == rows[-1].output_shape + (1, 1)
    assert pooled == POOLED[name]


def test_a_wrong_count_is_caught():
    # C3 fully connected instead of Table I: 2,416 - 1,516 = 900 parameters too many.
    full = PartialConv2d([tuple(range(6))] * 16, 5)
    assert n_params(full) == 16 * (6 * 25 + 1) == 2_416
    model = lenet5()
    model[4] = full
    assert n_params(model) == 60_840 + 900 != NETWORKS["lenet5"][3]


# --- summary --------------------------------------------------------------------------------

@pytest.mark.parametrize("factory, shape", [(lenet5, (2, 1, 32, 32)), (alexnet, (1, 3, 227, 227))])
def test_summary_rows_follow_a_layer_by_layer_forward_pass(factory, shape, capsys):
    torch.manual_seed(0)
    with default_dtype(torch.float32):
        model = factory().eval()
    rows = summary(model, shape)
    x = torch.zeros(shape, dtype=torch.float32)
    with torch.no_grad():
        for i, (layer, row) in enumerate(zip(model, rows)):
            x = layer(x)
            assert row.name == str(i) and row.kind == type(layer).__name__
            assert row.output_shape == tuple(x.shape)
            assert row.num_params == n_params(layer)
    assert len(rows) == len(model)
    printed = capsys.readouterr().out
    assert f"Total parameters: {n_params(model):,}" in printed
    assert printed.count("\n") == len(rows) + 4  # header, two rules, the rows, the total


def test_summary_counts_a_shared_module_once_and_restores_training_mode():
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, nn.ReLU(), layer, nn.Dropout(0.5))
    rows = summary(model, (3, 4), print_table=False)
    assert [r.num_params for r in rows] == [20, 0, 0, 0]
    assert [r.output_shape for r in rows] == [(3, 4)] * 4
    assert model.training and all(m.training for m in model.modules())


def test_summary_rows_of_a_nested_model_name_the_leaves():
    torch.manual_seed(0)
    with default_dtype(torch.float32):
        rows = summary(resnet18(num_classes=7), (1, 3, 64, 64), print_table=False)
    by_name = {r.name: r for r in rows}
    assert by_name["layer1.0.conv1"].output_shape == (1, 64, 16, 16)
    assert by_name["layer2.0.shortcut.0"].output_shape == (1, 128, 8, 8)  # the projection
    assert by_name["layer4.1.bn2"].output_shape == (1, 512, 2, 2)
    assert "layer1.0" not in by_name  # a block runs submodules: not a leaf
    assert rows[-1] == ("fc", "Linear", (1, 7), 512 * 7 + 7)


def test_summary_rejects_a_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        summary(nn.Linear(2, 2), (0, 2))


# --- LeNet-5 --------------------------------------------------------------------------------

def test_c3_table_is_table_one_of_the_paper():
    assert len(C3_TABLE) == 16
    assert [len(t) for t in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    for m in range(6):  # three contiguous maps, then four contiguous maps, wrapping around
        assert C3_TABLE[m] == tuple((m + i) % 6 for i in range(3))
        assert C3_TABLE[6 + m] == tuple((m + i) % 6 for i in range(4))
    assert [set(t) for t in C3_TABLE[12:15]] == [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}]
    assert C3_TABLE[15] == tuple(range(6))
    mask = PartialConv2d(C3_TABLE, 5).connection_mask()
    assert mask.sum().item() == 60 and mask.sum(dim=0).tolist() == [10] * 6  # each S2 map feeds 10
    assert n_params(PartialConv2d(C3_TABLE, 5)) == 60 * 25 + 16 == 1_516


def test_partial_conv_equals_a_masked_full_conv_and_sees_only_its_inputs(rng):
    layer = PartialConv2d(C3_TABLE, 5)  # float64 (conftest's default)
    full = torch.zeros(16, 6, 5, 5)
    for m, (inputs, w) in enumerate(zip(C3_TABLE, layer.weights)):
        full[m, list(inputs)] = w.detach()[0]
    bias = torch.stack([b.detach()[0] for b in layer.biases])
    x = torch.from_numpy(rng.standard_normal((2, 6, 14, 14))).requires_grad_(True)
    out = layer(x)
    np.testing.assert_allclose(out.detach().numpy(),
                               torch.nn.functional.conv2d(x, full, bias).detach().numpy(), **TIGHT)
    mask = layer.connection_mask()
    for m in (0, 9, 14):
        (grad,) = torch.autograd.grad(out[:, m].sum(), x, retain_graph=True)
        reached = (grad.abs().sum(dim=(0, 2, 3)) > 0).to(torch.int64)
        assert torch.equal(reached, mask[m])
    # negative case: the full convolution reaches every input map
    wrong = torch.nn.functional.conv2d(x, torch.ones(16, 6, 5, 5))
    (grad,) = torch.autograd.grad(wrong[:, 0].sum(), x)
    assert not torch.equal((grad.abs().sum(dim=(0, 2, 3)) > 0).to(torch.int64), mask[0])


def test_subsampling_is_coefficient_times_window_sum_plus_bias(rng):
    layer = Subsampling(3)
    x = rng.standard_normal((2, 3, 6, 4))
    out = layer(torch.from_numpy(x)).detach().numpy()
    coef, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    sums = x.reshape(2, 3, 3, 2, 2, 2).sum(axis=(3, 5))  # (N, C, 3, 2) window sums
    np.testing.assert_allclose(out, coef[:, None, None] * sums + bias[:, None, None], **TIGHT)
    assert n_params(layer) == 6
    assert not np.allclose(out, sums)  # the coefficient and bias do something


def test_rbf_units_give_squared_distances_and_the_squash_its_published_gain(rng):
    layer = RBFOutput(84, 10)
    centres = layer.centres.detach().numpy()
    assert set(np.unique(centres)) <= {-1.0, 1.0}
    x = rng.standard_normal((3, 84))
    expected = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), expected, **TIGHT)
    assert layer(torch.from_numpy(centres[[4]])).argmin().item() == 4  # a centre is its own class
    squash = LeNetSquash()(torch.tensor([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(squash.numpy(), [-1, 0, 1], atol=1e-4)  # A, S make f(+-1) = +-1


# --- AlexNet --------------------------------------------------------------------------------

def paper_lrn(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """Krizhevsky et al.'s formula as printed: the sum runs over channels clipped to [0, N-1]."""
    b = np.empty_like(a)
    channels = a.shape[1]
    for d in range(channels):
        lo, hi = max(0, d - n // 2), min(channels - 1, d + n // 2)
        b[:, d] = a[:, d] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
    return b


def test_alexnet_lrn_is_the_papers_formula(rng):
    with default_dtype(torch.float32):
        model = alexnet()
    lrn = [m for m in model if isinstance(m, nn.LocalResponseNorm)]  # no parameters: any dtype
    assert len(lrn) == 2
    a = 30 * rng.standard_normal((2, 7, 3, 3))  # large enough for the sum to matter
    out = lrn[0](torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(out, paper_lrn(a, **{k: v for k, v in ALEXNET_LRN.items()
                                                    if k != "size"}), **TIGHT)
    # negative case: passing the paper's alpha straight to torch divides it by 5
    wrong = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(torch.from_numpy(a)).numpy()
    assert not np.allclose(wrong, paper_lrn(a), **TIGHT)


@pytest.mark.parametrize("grouped, order", [(True, ["ReLU", "LocalResponseNorm", "MaxPool2d"]),
                                            (False, ["ReLU", "MaxPool2d", "LocalResponseNorm"])])
def test_alexnet_groups_and_lrn_placement(grouped, order):
    with default_dtype(torch.float32):
        model = alexnet(grouped=grouped)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == ([1, 2, 1, 2, 2] if grouped else [1] * 5)
    kinds = [type(m).__name__ for m in model]
    assert kinds[1:4] == order and kinds[5:8] == order
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_alexnet_does_not_tile_a_224_input():
    with default_dtype(torch.float32):
        model = alexnet().eval()
    with pytest.raises(RuntimeError):  # 224 -> 54 -> 26 -> 12 -> 5: 256*5*5 != 9216 inputs to fc6
        with torch.no_grad():
            model(torch.zeros(1, 3, 224, 224, dtype=torch.float32))


# --- GoogLeNet and ResNet blocks ------------------------------------------------------------

def test_googlenet_modules_have_table_ones_output_channels_and_aux_heads():
    outs = [Inception(192, *INCEPTION_TABLE["3a"]).out_channels]
    channels = outs[0]
    for row in list(INCEPTION_TABLE.values())[1:]:
        channels = Inception(channels, *row).out_channels
        outs.append(channels)
    assert outs == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    torch.manual_seed(0)
    with default_dtype(torch.float32):
        model = googlenet(num_classes=5, aux_logits=True)
        plain = googlenet(num_classes=5)
    assert n_params(model) == n_params(plain) + sum(
        n_params(m) for m in (model.aux1, model.aux2))
    with torch.no_grad():  # (evaluation mode, the plain logits, is the summary fixture's run)
        train_out = model.train()(torch.zeros(1, 3, 224, 224, dtype=torch.float32))
    assert [tuple(t.shape) for t in train_out] == [(1, 5)] * 3


def test_residual_blocks_shortcuts_and_bottleneck_saving(rng):
    identity = BasicBlock(64, 64)
    projection = BasicBlock(64, 128, stride=2)
    assert identity.shortcut is None
    assert n_params(projection.shortcut) == 64 * 128 + 2 * 128  # 1x1 conv and BN
    x = torch.from_numpy(rng.standard_normal((2, 64, 8, 8)))
    assert tuple(projection(x).shape) == (2, 128, 4, 4)
    bottleneck = Bottleneck(256, 64)
    assert bottleneck.shortcut is None
    assert tuple(bottleneck(x.repeat(1, 4, 1, 1)).shape) == (2, 256, 8, 8)
    weights = lambda block: sum(m.weight.numel() for m in block.modules()  # noqa: E731
                                if isinstance(m, nn.Conv2d))
    assert weights(bottleneck) == 256 * 64 + 64 * 64 * 9 + 64 * 256 == 69_632
    assert weights(BasicBlock(256, 256)) == 2 * 256 * 256 * 9 == 1_179_648
    # with zero weights in the last BN the block is relu(x): the identity path carries x through
    with torch.no_grad():
        identity.bn2.weight.zero_()
    identity.eval()
    np.testing.assert_allclose(identity(x).detach().numpy(), np.maximum(x.numpy(), 0), **TIGHT)


# --- receptive_field_layers -----------------------------------------------------------------

def test_receptive_field_layers_read_the_geometry_of_single_path_networks():
    with default_dtype(torch.float32):
        layers = receptive_field_layers(alexnet(grouped=False))
        assert layers == [(11, 4, 0, 1), (3, 2, 0, 1), (5, 1, 2, 1), (3, 2, 0, 1), (3, 1, 1, 1),
                          (3, 1, 1, 1), (3, 1, 1, 1), (3, 2, 0, 1)]
        assert receptive_field_layers(lenet5()) == receptive_field_layers(lenet5(modern=True)) == [
            (5, 1, 0, 1), (2, 2, 0, 1), (5, 1, 0, 1), (2, 2, 0, 1), (5, 1, 0, 1)]
    rows = receptive_field(receptive_field_layers(lenet5()), input_size=32)
    assert [r.output_size for r in rows] == [28, 14, 10, 5, 1]
    assert rows[-1].size == 32  # a C5 unit sees the whole 32x32 input
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.ReLU()),
                           nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    assert receptive_field_layers(nested) == [(3, 1, 0, 2), (2, 2, 0, 1)]


@pytest.mark.parametrize("model, match", [
    (lambda: resnet18(), "single-path nn.Sequential"),
    (lambda: nin(variant="cifar10", num_classes=10), "ceil_mode"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, (3, 1))), "expected one int for both axes"),
    (lambda: nn.Sequential(nn.Upsample(scale_factor=2)), r"\(Upsample\) has no known geometry"),
])
def test_receptive_field_layers_refuse_what_they_cannot_read(model, match):
    with default_dtype(torch.float32), pytest.raises(ValueError, match=match):
        receptive_field_layers(model())


@pytest.mark.parametrize("factory", [lenet5, alexnet, vgg16, nin, googlenet, resnet18])
def test_num_classes_is_checked(factory):
    with pytest.raises(ValueError, match="num_classes: expected an int >= 1"):
        factory(num_classes=0)


def test_count_macs_is_the_hand_count_and_the_published_vgg16_cost():
    """Conv: F*OH*OW*(C/g)*KH*KW; Linear: D_out*D_in; VGG-16 at 224: 15.47 G (Wei 2017, ch. 4)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 6, 3, groups=2), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))
    shape_before = (2, 3, 8, 8)
    hand = 4 * 8 * 8 * 3 * 9 + 6 * 2 * 2 * 2 * 9 + 5 * 24
    assert count_macs(net, shape_before) == hand  # per example, whatever the batch
    assert count_macs(net, (1, 3, 8, 8)) == hand
    assert count_macs(net, (1, 3, 8, 8)) != hand + 1  # negative case: an off-by-one is seen
    net.train()
    count_macs(net, (1, 3, 8, 8))
    assert net.training and all(m.training for m in net.modules())
    assert count_macs(vgg16(), (1, 3, 224, 224)) == 15_470_264_320
    assert count_macs(alexnet(grouped=False), (1, 3, 227, 227)) == 1_135_256_096
    # LeNet-5: C1 28*28*6*25, C3 10*10*60*25 (its table), C5 120*400, F6 84*120, RBF 10*84
    assert count_macs(lenet5(), (1, 1, 32, 32)) == 117_600 + 150_000 + 48_000 + 10_080 + 840
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(net, (0, 3, 8, 8))
