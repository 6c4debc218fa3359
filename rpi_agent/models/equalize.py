"""Cross-layer equalisation of depthwise-separable blocks, before per-tensor INT8 quantisation.

Build-time only (torch). With one weight scale per tensor (the slim/RFB landmark builds, for
size), a depthwise convolution whose channels have very different weight ranges quantises its
small channels to a few levels. In a block ``depthwise -> BN -> ReLU -> pointwise``, channel
``i`` of the depthwise output can be divided by any ``s_i > 0`` and the pointwise input column
``i`` multiplied by it without changing the function (ReLU commutes with positive scales);
``s_i = sqrt(r1_i / r2_i)`` gives both channels the range ``sqrt(r1_i * r2_i)`` (Nagel et al.,
"Data-Free Quantization Through Weight Equalization and Bias Correction", ICCV 2019).
"""

from __future__ import annotations

import torch
from torch import nn


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution with the (eval-mode) batch norm that follows it folded into its weights and bias."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gain = bn.weight / std
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * gain.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * gain + bn.bias)
    return fused


def _is_separable_block(block: nn.Module) -> bool:
    """``depthwise conv, BN, ReLU, 1x1 conv, BN, ReLU`` as :func:`rpi_agent.models.networks._dw_block` makes."""
    if not isinstance(block, nn.Sequential) or len(block) != 6:
        return False
    dw, bn1, relu, pw = block[0], block[1], block[2], block[3]
    return (isinstance(dw, nn.Conv2d) and dw.groups == dw.in_channels == dw.out_channels
            and isinstance(bn1, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
            and isinstance(pw, nn.Conv2d) and pw.kernel_size == (1, 1))


def equalize_block(block: nn.Sequential) -> None:
    """Fold the depthwise conv's batch norm and equalise it with the pointwise conv, in place."""
    dw = fold_batch_norm(block[0], block[1])
    pw = block[3]
    with torch.no_grad():
        r1 = dw.weight.abs().amax(dim=(1, 2, 3))
        r2 = pw.weight.abs().amax(dim=(0, 2, 3))
        scale = torch.where((r1 > 0) & (r2 > 0), torch.sqrt(r1 / r2.clamp_min(1e-12)), torch.ones_like(r1))
        dw.weight.div_(scale.reshape(-1, 1, 1, 1))
        dw.bias.div_(scale)
        pw.weight.mul_(scale.reshape(1, -1, 1, 1))
    block[0], block[1] = dw, nn.Identity()


def equalize_separable(net: nn.Module) -> int:
    """Equalise every depthwise-separable block of ``net`` in place; returns how many."""
    blocks = [m for m in net.modules() if _is_separable_block(m)]
    for block in blocks:
        equalize_block(block)  # type: ignore[arg-type]
    return len(blocks)
