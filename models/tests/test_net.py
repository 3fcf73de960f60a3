import pytest
import torch

from hourglass.net import Hourglass, Residual, StackedHourglass


@pytest.mark.parametrize("cin,cout", [(8, 8), (8, 16), (16, 8), (64, 128)])
def test_residual_shapes(cin, cout):
    r = Residual(cin, cout).eval()
    y = r(torch.randn(2, cin, 12, 10))
    assert y.shape == (2, cout, 12, 10)
    assert (r.skip is None) == (cin == cout)
    assert r.conv1.out_channels == cout // 2
    assert r.conv2.kernel_size == (3, 3) and r.conv2.out_channels == cout // 2
    assert r.conv3.out_channels == cout


def test_residual_identity_skip():
    # with the branch's last conv zeroed the module is exactly the identity
    r = Residual(8, 8).eval()
    with torch.no_grad():
        r.conv3.weight.zero_()
        r.conv3.bias.zero_()
    x = torch.randn(1, 8, 5, 5)
    assert torch.equal(r(x), x)


def test_residual_rejects_odd_width():
    with pytest.raises(ValueError):
        Residual(8, 7)


@pytest.mark.parametrize("depth,size", [(1, 8), (2, 8), (4, 16), (4, 32)])
def test_hourglass_keeps_shape(depth, size):
    hg = Hourglass(depth, 8).eval()
    x = torch.randn(1, 8, size, size + 16)
    assert hg(x).shape == x.shape


def test_hourglass_depth_structure():
    hg = Hourglass(4, 8)
    levels = 0
    node = hg
    while isinstance(node, Hourglass):
        levels += 1
        node = node.low2
    assert levels == 4
    # 3 residuals per level + 1 innermost
    assert sum(isinstance(m, Residual) for m in hg.modules()) == 13


@pytest.mark.parametrize(
    "stacks,joints,size",
    [(1, 16, 64), (2, 16, 128), (3, 8, 64), (2, 14, (64, 128))],
)
def test_per_stack_outputs(stacks, joints, size):
    net = StackedHourglass(stacks=stacks, features=16, joints=joints, input_size=size).eval()
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        outs = net(torch.rand(1, 3, h, w))
    assert isinstance(outs, list) and len(outs) == stacks
    for o in outs:
        assert o.shape == (1, joints, h // 4, w // 4)
    assert net.heatmap_size == (h // 4, w // 4)


def test_shallower_depth_allows_smaller_input():
    net = StackedHourglass(stacks=1, features=8, joints=4, input_size=32, depth=3).eval()
    with torch.no_grad():
        (out,) = net(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 4, 8, 8)


@pytest.mark.parametrize("size", [96, 100, 250])
def test_input_size_must_be_multiple_of_64(size):
    with pytest.raises(ValueError):
        StackedHourglass(stacks=1, features=16, input_size=size)


def test_remaps_only_between_stacks():
    net = StackedHourglass(stacks=3, features=16, joints=5, input_size=64)
    assert len(net.hourglasses) == 3 and len(net.heads) == 3
    assert len(net.remap_features) == 2 and len(net.remap_heatmaps) == 2
    assert net.remap_heatmaps[0].in_channels == 5 and net.remap_heatmaps[0].out_channels == 16


def test_stem_reduces_by_four():
    net = StackedHourglass(stacks=1, features=32, input_size=128)
    with torch.no_grad():
        y = net.stem(torch.rand(1, 3, 128, 128))
    assert y.shape == (1, 32, 32, 32)
