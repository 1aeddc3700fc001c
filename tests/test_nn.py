"""Tests for dgm.nn: the layer stacks have the shapes and the layer order the chapters rely on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dgm.nn import conv_stack, mlp, mlp_layers


def test_mlp_has_no_activation_after_the_last_layer():
    layers = mlp_layers([5, 8, 3], nn.Tanh)
    assert [type(m) for m in layers] == [nn.Linear, nn.Tanh, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (5, 8, 3)
    net = mlp([4, 2])
    assert isinstance(net, nn.Sequential) and len(net) == 1
    assert net(torch.zeros(7, 4)).shape == (7, 2)


@pytest.mark.parametrize("channels", [(8,), (8, 16)])
def test_conv_stack_halves_and_mirrors(channels):
    enc, dec = conv_stack((1, 8, 8), channels, code_in=3, enc_out=6, extra_in_channels=2)
    encoder, decoder = nn.Sequential(*enc), nn.Sequential(*dec)
    assert encoder(torch.zeros(4, 3, 8, 8)).shape == (4, 6)
    assert decoder(torch.zeros(4, 3)).shape == (4, 1, 8, 8)
    strided = [m for m in enc if isinstance(m, nn.Conv2d)]
    assert len(strided) == len(channels) and all(m.stride == (2, 2) for m in strided)
    assert not isinstance(dec[-1], nn.ReLU)


def test_conv_stack_refuses_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 4"):
        conv_stack((1, 6, 6), (8, 16), code_in=2, enc_out=2)
