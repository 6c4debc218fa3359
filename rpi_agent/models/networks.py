"""PyTorch definitions of the two Ultra-Light face detector networks ("slim" and "RFB").

Build-time only: this module imports torch and runs inside the build virtualenv
(``scripts/build_env.sh``), never in the daemon.

Both networks share one shape: a MobileNet-like backbone of 13 stages (a 3x3 stem, then
depthwise-separable blocks; RFB swaps stage 7 for a receptive-field block), an extra
stride-2 stage, and SSD-style heads on four feature maps (strides 8, 16, 32, 64) predicting
3, 2, 2, 3 priors per cell. The forward pass returns what the upstream
``*_without_postprocessing`` export returns: softmax scores ``(1, N, 2)`` and raw box offsets
``(1, N, 4)``, priors in row-major order per map. Attribute names mirror the keys of the
upstream ``.pth`` state dicts so they load with ``strict=True``.

Every convolution pads so that a stride-2 stage maps ``n`` to ``ceil(n / 2)``; any input
size works and the feature maps match ``ceil(size / stride)`` of the prior generator.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHES = ("slim", "RFB")
BASE_CHANNELS = 16
PRIORS_PER_CELL = (3, 2, 2, 3)
NUM_CLASSES = 2
# Backbone stage after which each of the first three heads taps the feature map.
_TAPS = (8, 11, 13)


def _stem(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU (keys ``0``, ``1``)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def _dw_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with batch norm and ReLU (keys ``0,1,3,4``)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def _separable_head(c_in: int, c_out: int, *, stride: int = 1) -> nn.Sequential:
    """Biased depthwise 3x3, ReLU, biased pointwise 1x1 (keys ``0``, ``2``)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in),
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, 1),
    )


class ConvBN(nn.Module):
    """Convolution without bias, batch norm, optional ReLU (keys ``conv``, ``bn``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int = 1, dilation: int = 1,
                 relu: bool = True) -> None:
        super().__init__()
        padding = dilation * (kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.01)
        self.relu = nn.ReLU() if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv, bn and the optional ReLU."""
        x = self.bn(self.conv(x))
        return self.relu(x) if self.relu is not None else x


class ReceptiveFieldBlock(nn.Module):
    """Three dilated branches (rates 2, 3, 5) concatenated, fused 1x1, plus a 1x1 shortcut.

    Args:
        channels: Input and output channels; the branches work at ``channels // 8``.
        scale: Weight of the fused branches against the shortcut.
    """

    def __init__(self, channels: int, *, scale: float = 1.0) -> None:
        super().__init__()
        inner = channels // 8
        self.scale = scale
        self.branch0 = nn.Sequential(
            ConvBN(channels, inner, 1, relu=False),
            ConvBN(inner, 2 * inner, 3),
            ConvBN(2 * inner, 2 * inner, 3, dilation=2, relu=False),
        )
        self.branch1 = nn.Sequential(
            ConvBN(channels, inner, 1, relu=False),
            ConvBN(inner, 2 * inner, 3),
            ConvBN(2 * inner, 2 * inner, 3, dilation=3, relu=False),
        )
        self.branch2 = nn.Sequential(
            ConvBN(channels, inner, 1, relu=False),
            ConvBN(inner, (inner // 2) * 3, 3),
            ConvBN((inner // 2) * 3, 2 * inner, 3),
            ConvBN(2 * inner, 2 * inner, 3, dilation=5, relu=False),
        )
        self.ConvLinear = ConvBN(6 * inner, channels, 1, relu=False)  # name fixed by the state-dict keys
        self.shortcut = ConvBN(channels, channels, 1, relu=False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse the branches and add the shortcut."""
        fused = self.ConvLinear(torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1))
        return self.relu(fused * self.scale + self.shortcut(x))


def _backbone(arch: str) -> nn.Sequential:
    c = BASE_CHANNELS
    stage7: nn.Module = ReceptiveFieldBlock(4 * c) if arch == "RFB" else _dw_block(4 * c, 4 * c, 1)
    return nn.Sequential(
        _stem(3, c, 2),
        _dw_block(c, 2 * c, 1),
        _dw_block(2 * c, 2 * c, 2),
        _dw_block(2 * c, 2 * c, 1),
        _dw_block(2 * c, 4 * c, 2),
        _dw_block(4 * c, 4 * c, 1),
        _dw_block(4 * c, 4 * c, 1),
        stage7,
        _dw_block(4 * c, 8 * c, 2),  # stride 16 from here
        _dw_block(8 * c, 8 * c, 1),
        _dw_block(8 * c, 8 * c, 1),
        _dw_block(8 * c, 16 * c, 2),  # stride 32
        _dw_block(16 * c, 16 * c, 1),
    )


def _heads(out_per_prior: int) -> nn.ModuleList:
    c = BASE_CHANNELS
    k = PRIORS_PER_CELL
    return nn.ModuleList([
        _separable_head(4 * c, k[0] * out_per_prior),
        _separable_head(8 * c, k[1] * out_per_prior),
        _separable_head(16 * c, k[2] * out_per_prior),
        nn.Conv2d(16 * c, k[3] * out_per_prior, 3, 1, 1),
    ])


class UltraLightDetector(nn.Module):
    """The slim or RFB face detector.

    Args:
        arch: ``"slim"`` or ``"RFB"``.

    Example:
        >>> net = UltraLightDetector("RFB")
        >>> net.load_state_dict(torch.load("version-RFB-320.pth", weights_only=True), strict=True)
        >>> scores, boxes = net(torch.zeros(1, 3, 240, 320))  # (1, 4420, 2), (1, 4420, 4)
    """

    def __init__(self, arch: str) -> None:
        super().__init__()
        if arch not in ARCHES:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHES)}")
        c = BASE_CHANNELS
        self.arch = arch
        self.base_net = _backbone(arch)
        self.extras = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(16 * c, 4 * c, 1),
                nn.ReLU(),
                _separable_head(4 * c, 16 * c, stride=2),
                nn.ReLU(),
            )
        ])
        self.classification_headers = _heads(NUM_CLASSES)
        self.regression_headers = _heads(4)

    def _head(self, index: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # NCHW -> NHWC then flatten, so priors run row-major over each map, anchors innermost.
        conf = self.classification_headers[index](x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, NUM_CLASSES)
        loc = self.regression_headers[index](x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4)
        return conf, loc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network.

        Args:
            x: ``(B, 3, H, W)`` float32, RGB normalised as ``(pixel - 127) / 128``.

        Returns:
            Scores ``(B, N, 2)`` after softmax (background, face) and box offsets ``(B, N, 4)``
            (dcx, dcy, dw, dh) relative to the priors, before the variances are applied.
        """
        confs: list[torch.Tensor] = []
        locs: list[torch.Tensor] = []
        start = 0
        for head, stop in enumerate(_TAPS):
            for layer in self.base_net[start:stop]:
                x = layer(x)
            start = stop
            conf, loc = self._head(head, x)
            confs.append(conf)
            locs.append(loc)
        x = self.extras[0](x)
        conf, loc = self._head(len(_TAPS), x)
        confs.append(conf)
        locs.append(loc)
        scores = torch.softmax(torch.cat(confs, 1), dim=2)
        return scores, torch.cat(locs, 1)


def load_network(arch: str, weights: str, *, strict: bool = True) -> UltraLightDetector:
    """Build the network and load an upstream ``.pth`` state dict, in eval mode.

    Args:
        arch: ``"slim"`` or ``"RFB"``.
        weights: Path of the ``.pth`` file (a plain state dict).
        strict: Require the state dict keys and shapes to match exactly.

    Returns:
        The network, ready for inference on CPU.
    """
    net = UltraLightDetector(arch)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=strict)
    net.eval()
    return net
