import pytest
import torch

from hourglass.complexity import (
    analytic_macs,
    analytic_params,
    build_meta,
    count_macs,
    count_params,
    main,
    measure,
)
from hourglass.net import Residual, StackedHourglass

PAPER_PARAMS = 25e6  # Newell et al. 2016: 8 stacks x 256 features, "about 25M parameters"


def test_paper_configuration_param_count():
    params, macs = measure(stacks=8, features=256, joints=16, input_size=256)
    assert params == 25_434_112
    assert abs(params - PAPER_PARAMS) / PAPER_PARAMS < 0.05
    assert macs == 27_440_185_344  # ~27.4 GMACs per 256x256 frame


def test_residual_hand_computed():
    # Residual(4 -> 8) on 8x8: mid = 4
    #   conv1 1x1 4->4: 16 MACs/px, conv2 3x3 4->4: 144, conv3 1x1 4->8: 32, skip 1x1 4->8: 32
    #   = 224 MACs/px * 64 px = 14336
    # params: conv 20 + 148 + 40 + 40 (skip) = 248, BN (weight+bias) 8 + 8 + 8 = 24 -> 272
    r = Residual(4, 8)
    macs = 0

    def hook(mod, _i, out):
        nonlocal macs
        kh, kw = mod.kernel_size
        macs += out.shape[2] * out.shape[3] * mod.out_channels * mod.in_channels * kh * kw

    for m in r.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    r(torch.zeros(1, 4, 8, 8))
    assert macs == 14336
    assert count_params(r) == 272


def test_tiny_network_hand_computed():
    # stacks=1, features=8, joints=2, input 16x16, depth 1.
    # stem: 7x7/2 conv 3->64 at 8x8: 64*64*3*49              =   602112
    #       Residual(64->128) at 8x8: (4096+36864+8192+8192)*64 = 3670016
    #       Residual(128->128) at 4x4: (8192+36864+8192)*16     =   851968
    #       Residual(128->8) at 4x4: (512+144+32+1024)*16       =    27392
    # stack at 4x4 (residual 8->8 = 208 MACs/px):
    #       hourglass: up1 208*16 + low1/low2/low3 3*208*4     =     5824
    #       post residual 208*16 = 3328, lin 8*8*16 = 1024, head 8*2*16 = 256
    expected = 602112 + 3670016 + 851968 + 27392 + 5824 + 3328 + 1024 + 256
    assert expected == 5161920
    net = StackedHourglass(stacks=1, features=8, joints=2, input_size=16, depth=1)
    assert count_macs(net, 16, device=None) == expected
    assert analytic_macs(1, 8, 2, 16, depth=1) == expected


@pytest.mark.parametrize(
    "cfg",
    [
        dict(stacks=1, features=16, joints=16, input_size=128),
        dict(stacks=2, features=32, joints=16, input_size=256),
        dict(stacks=3, features=64, joints=14, input_size=192),
        dict(stacks=2, features=24, joints=7, input_size=(128, 64), depth=3),
        dict(stacks=2, features=16, joints=16, input_size=64, num_modules=2),
    ],
)
def test_hooks_agree_with_formula(cfg):
    net = build_meta(**cfg)
    assert count_macs(net, cfg["input_size"]) == analytic_macs(**cfg)
    assert count_params(net) == analytic_params(
        cfg["stacks"], cfg["features"], cfg["joints"], cfg.get("depth", 4), cfg.get("num_modules", 1)
    )


def test_meta_and_cpu_counts_agree():
    cfg = dict(stacks=2, features=16, joints=16, input_size=64)
    cpu = StackedHourglass(**cfg).eval()
    assert count_macs(cpu, 64, device=None) == count_macs(build_meta(**cfg), 64)


def test_cli(capsys):
    main(["--stacks", "2", "--features", "64"])
    out = capsys.readouterr().out
    assert "params: 545248" in out
    assert "GMACs" in out
