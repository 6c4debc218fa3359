"""PyTorch definitions of the three face detectors with five-point landmark heads.

Build-time only (torch), like :mod:`rpi_agent.models.networks`.

- ``slim-landmark`` and ``RFB-landmark``: the Ultra-Light backbone (the same 13 stages,
  stage 8 a receptive-field block in the RFB one) with an extra stride-2 stage and four
  SSD heads (strides 8, 16, 32, 64; 3, 2, 2, 3 priors per cell), each head predicting box
  offsets, two class logits and ten landmark offsets per prior.
- ``retinaface-mnet0.25``: RetinaFace on a MobileNet-0.25 backbone. Three backbone taps
  (strides 8, 16, 32) go through a top-down feature pyramid (1x1 laterals, nearest
  upsampling, 3x3 merges), then an SSH context module per level, then 1x1 heads with two
  priors per cell.

Every network returns ``(scores, boxes, landmarks)``: softmax scores ``(B, N, 2)``, box
offsets ``(B, N, 4)`` and landmark offsets ``(B, N, 10)``, priors row-major per map with the
anchors innermost. Attribute names follow the keys of the published state dicts so they load
with ``strict=True``. The networks take BGR minus (104, 117, 123); :class:`RawPixelInput`
wraps one so that it takes raw RGB pixel values instead, with the channel swap folded into
the first convolution's weights.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from rpi_agent.models.networks import ReceptiveFieldBlock, _dw_block, _separable_head, _stem

LANDMARK_ARCHES = ("slim-landmark", "RFB-landmark", "retinaface-mnet0.25")
# Channel means the published weights were trained with, in BGR order.
TRAINING_MEAN_BGR = (104.0, 117.0, 123.0)
_SSD_PRIORS = (3, 2, 2, 3)
_RETINA_PRIORS = 2
_OUTPUTS = (2, 4, 10)  # class logits, box offsets, landmark offsets per prior


def _flatten(x: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, A*width, H, W)`` -> ``(B, H*W*A, width)``: row-major over the map, anchors innermost."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width)


def _finish(conf: list[torch.Tensor], loc: list[torch.Tensor],
            landm: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.softmax(torch.cat(conf, 1), dim=2), torch.cat(loc, 1), torch.cat(landm, 1)


class LandmarkSSD(nn.Module):
    """The slim or RFB detector with landmark heads (``conv1``..``conv14``, ``loc``/``conf``/``landm``).

    Args:
        arch: ``"slim-landmark"`` or ``"RFB-landmark"``.
    """

    def __init__(self, arch: str) -> None:
        super().__init__()
        if arch not in LANDMARK_ARCHES[:2]:
            raise ValueError(f"unknown architecture {arch!r}")
        widths = ((3, 16, 2), (16, 32, 1), (32, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 64, 1),
                  (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1))
        for index, (c_in, c_out, stride) in enumerate(widths, start=1):
            layer: nn.Module
            if index == 1:
                layer = _stem(c_in, c_out, stride)
            elif index == 8 and arch == "RFB-landmark":
                layer = ReceptiveFieldBlock(64)
            else:
                layer = _dw_block(c_in, c_out, stride)
            self.add_module(f"conv{index}", layer)
        self.conv14 = nn.Sequential(nn.Conv2d(256, 64, 1), nn.ReLU(), _separable_head(64, 256, stride=2), nn.ReLU())
        channels = (64, 128, 256, 256)
        self.loc, self.conf, self.landm = (self._heads(channels, width) for width in (4, 2, 10))

    @staticmethod
    def _heads(channels: tuple[int, ...], width: int) -> nn.Sequential:
        heads: list[nn.Module] = [_separable_head(c, k * width)
                                  for c, k in zip(channels[:3], _SSD_PRIORS, strict=False)]
        heads.append(nn.Conv2d(channels[3], _SSD_PRIORS[3] * width, 3, 1, 1))
        return nn.Sequential(*heads)

    @property
    def stem_conv(self) -> nn.Conv2d:
        """The first convolution (the only one that sees the input channels)."""
        return self.conv1[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` BGR minus the training mean -> scores, box and landmark offsets."""
        taps = []
        for index in range(1, 15):
            x = getattr(self, f"conv{index}")(x)
            if index in (8, 11, 13, 14):
                taps.append(x)
        conf = [_flatten(self.conf[i](t), 2) for i, t in enumerate(taps)]
        loc = [_flatten(self.loc[i](t), 4) for i, t in enumerate(taps)]
        landm = [_flatten(self.landm[i](t), 10) for i, t in enumerate(taps)]
        return _finish(conf, loc, landm)


def _conv_bn(c_in: int, c_out: int, kernel: int = 3, *, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MobileNetBody(nn.Module):
    """MobileNet-0.25 up to stride 32, in three stages (keys ``stage1``..``stage3``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(_stem(3, 8, 2), _dw_block(8, 16, 1), _dw_block(16, 32, 2),
                                    _dw_block(32, 32, 1), _dw_block(32, 64, 2), _dw_block(64, 64, 1))
        self.stage2 = nn.Sequential(_dw_block(64, 128, 2), *(_dw_block(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(_dw_block(128, 256, 2), _dw_block(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 8, 16 and 32."""
        s8 = self.stage1(x)
        s16 = self.stage2(s8)
        return [s8, s16, self.stage3(s16)]


class FeaturePyramid(nn.Module):
    """Top-down pyramid: 1x1 laterals to 64 channels, nearest upsampling, 3x3 merges."""

    def __init__(self, channels: tuple[int, int, int], out: int) -> None:
        super().__init__()
        self.output1, self.output2, self.output3 = (_conv_bn(c, out, 1) for c in channels)
        self.merge1 = _conv_bn(out, out)
        self.merge2 = _conv_bn(out, out)
        # False: a constant 2x scale (what converts to TFLite); True: nearest resize to the
        # finer map's size, upstream's way, which any input size allows (the any-size ONNX).
        self.any_size = False

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Three maps of ``out`` channels at the input maps' sizes."""
        p3 = self.output3(feats[2])
        p2 = self.merge2(self.output2(feats[1]) + _upsample_to(p3, feats[1], self.any_size))
        p1 = self.merge1(self.output1(feats[0]) + _upsample_to(p2, feats[0], self.any_size))
        return [p1, p2, p3]


def _upsample_to(x: torch.Tensor, like: torch.Tensor, any_size: bool = False) -> torch.Tensor:
    """Nearest upsampling of ``x`` to the spatial size of ``like``.

    A constant 2x scale converts to TFLite cleanly, where resizing to a size read from the graph,
    or cropping a doubled odd map, trips the converter's layout tracking. So RetinaFace builds
    need input sides that are multiples of 32 (the manifest's ``size_multiple``); ``any_size``
    resizes to ``like``'s size instead, for the ONNX export that takes any input size.
    """
    if any_size:
        return F.interpolate(x, size=(like.shape[2], like.shape[3]), mode="nearest")
    if like.shape[2] != 2 * x.shape[2] or like.shape[3] != 2 * x.shape[3]:
        raise ValueError(f"RetinaFace input sides must be multiples of 32 (feature maps {tuple(like.shape[2:])} "
                         f"and {tuple(x.shape[2:])} are not 2:1)")
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class ContextModule(nn.Module):
    """SSH context: a 3x3 branch (half the channels) and stacked 3x3s standing in for 5x5 and 7x7."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(c_in, c_out // 2, relu=False)  # names fixed by the state-dict keys
        self.conv5X5_1 = _conv_bn(c_in, c_out // 4)
        self.conv5X5_2 = _conv_bn(c_out // 4, c_out // 4, relu=False)
        self.conv7X7_2 = _conv_bn(c_out // 4, c_out // 4)
        self.conv7x7_3 = _conv_bn(c_out // 4, c_out // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the three branches, then ReLU."""
        mid = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(mid), self.conv7x7_3(self.conv7X7_2(mid))], 1))


class _Head(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x)


class RetinaFaceMobileNet(nn.Module):
    """RetinaFace with the MobileNet-0.25 backbone (keys ``body``, ``fpn``, ``ssh1..3``, ``*Head``)."""

    def __init__(self) -> None:
        super().__init__()
        width = 64
        self.body = MobileNetBody()
        self.fpn = FeaturePyramid((64, 128, 256), width)
        self.ssh1, self.ssh2, self.ssh3 = (ContextModule(width, width) for _ in range(3))
        self.ClassHead, self.BboxHead, self.LandmarkHead = (
            nn.ModuleList(_Head(width, _RETINA_PRIORS * n) for _ in range(3)) for n in _OUTPUTS)

    @property
    def stem_conv(self) -> nn.Conv2d:
        """The first convolution (the only one that sees the input channels)."""
        return self.body.stage1[0][0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` BGR minus the training mean -> scores, box and landmark offsets."""
        levels = self.fpn(self.body(x))
        feats = [ssh(level) for ssh, level in zip((self.ssh1, self.ssh2, self.ssh3), levels, strict=True)]
        conf = [_flatten(self.ClassHead[i](f), 2) for i, f in enumerate(feats)]
        loc = [_flatten(self.BboxHead[i](f), 4) for i, f in enumerate(feats)]
        landm = [_flatten(self.LandmarkHead[i](f), 10) for i, f in enumerate(feats)]
        return _finish(conf, loc, landm)


class RawPixelInput(nn.Module):
    """A landmark network that takes raw RGB pixel values (0..255) instead of BGR minus the mean.

    The RGB-to-BGR swap is folded into the first convolution's input channels (exact); the
    mean subtraction stays one constant subtraction in the graph, so the INT8 model's input is
    the camera's RGB bytes themselves (scale 1; as int8, zero point -128).
    """

    def __init__(self, net: LandmarkSSD | RetinaFaceMobileNet) -> None:
        super().__init__()
        self.net = copy.deepcopy(net)
        stem = self.net.stem_conv
        with torch.no_grad():
            stem.weight.copy_(stem.weight.flip(1))
        mean_rgb = torch.tensor(TRAINING_MEAN_BGR[::-1], dtype=torch.float32).reshape(1, 3, 1, 1)
        self.register_buffer("mean_rgb", mean_rgb)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` float RGB in 0..255 -> the wrapped network's outputs."""
        return self.net(x - self.mean_rgb)


def allow_any_size(net: nn.Module) -> nn.Module:
    """Let a network (possibly wrapped) take any input size; a no-op for the SSD networks."""
    for module in net.modules():
        if isinstance(module, FeaturePyramid):
            module.any_size = True
    return net


def build_network(arch: str) -> LandmarkSSD | RetinaFaceMobileNet:
    """An untrained network of one of :data:`LANDMARK_ARCHES`."""
    if arch == "retinaface-mnet0.25":
        return RetinaFaceMobileNet()
    if arch in LANDMARK_ARCHES:
        return LandmarkSSD(arch)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(LANDMARK_ARCHES)}")


def load_landmark_network(arch: str, weights: str) -> LandmarkSSD | RetinaFaceMobileNet:
    """Build the network and load a published ``.pth`` state dict strictly, in eval mode.

    Raises:
        RuntimeError: The state dict belongs to another network (missing, unexpected or
            differently shaped keys); the message starts with one line naming the problem.
    """
    net = build_network(arch)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {key.removeprefix("module."): value for key, value in state.items()}
    net.load_state_dict(state, strict=True)
    net.eval()
    return net
