"""Small PyTorch models with the pooling layers people export (built only when torch is
installed): shared by the torch-bridge tests and benchmarks/bench_torch_models.py."""
import torch
import torch.nn.functional as F
from torch import nn


class ResNetHead(nn.Module):
    """conv (stride 2) -> AdaptiveAvgPool2d((7, 7)) on a non-divisible map -> linear."""

    def __init__(self, channels=16, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.fc = nn.Linear(channels * 49, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: pool to 1, 2, 3, 6, 1x1 conv, bilinear back, concat."""

    def __init__(self, channels=16, scales=(1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(channels, channels // 4, 1)) for s in scales)

    def forward(self, x):
        size = x.shape[-2:]
        return torch.cat([x] + [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False)
                                for stage in self.stages], dim=1)


class MaxWithIndices(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d((5, 4), return_indices=True)

    def forward(self, x):
        values, indices = self.pool(self.conv(x))
        return values, indices


class Video3d(nn.Module):
    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv3d(3, channels, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool3d((2, 3, 4))

    def forward(self, x):
        return self.pool(self.conv(x))


class DivisorPool(nn.Module):
    def __init__(self, channels=8, ceil_mode=False):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=ceil_mode, divisor_override=4)

    def forward(self, x):
        return self.pool(self.conv(x))


class MaxPoolHead(nn.Module):
    """conv -> MaxPool2d(3, 2) -> AdaptiveAvgPool2d(1) -> linear: torch.export guards the max
    pool's output size (!= 1), a range guard, not a specialisation (issue 16's reproducer)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(3, 2), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        return self.body(x)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block and head in small: depthwise 7x7 conv, LayerNorm over the permuted
    (N, H, W, C) tensor, pointwise MLP, residual, global adaptive average pool."""

    def __init__(self, channels=8):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 4, stride=4)
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.mlp(self.norm(self.dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return self.head(torch.flatten(self.pool(x + y), 1))


# name -> (factory, example input shape, other input shapes for dynamic H/W)
class StridedStem(nn.Module):
    """ResNet's stem pooling with ceil_mode, then the map flattened and pooled along it:
    conv -> MaxPool2d(3, 2, 1, ceil_mode=True) -> flatten -> AvgPool1d(3, 2, 1, ceil_mode=True,
    count_include_pad=False)."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.pool1d = nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False)

    def forward(self, x):
        return self.pool1d(torch.flatten(self.pool(torch.relu(self.conv(x))), 2))


class MaxPoolIndices(nn.Module):
    """conv -> MaxPool2d(3, 2, 1, return_indices=True): values and indices (as for MaxUnpool2d)."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1, return_indices=True)

    def forward(self, x):
        return self.pool(self.conv(x))


class StridedVideo(nn.Module):
    """conv3d -> MaxPool3d(2, 2) -> AvgPool3d(3, 2, 1, ceil_mode=True, divisor_override=5)."""

    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv3d(3, channels, 3, padding=1)
        self.pool = nn.MaxPool3d(2, 2)
        self.avg = nn.AvgPool3d(3, 2, 1, ceil_mode=True, divisor_override=5)

    def forward(self, x):
        return self.avg(self.pool(self.conv(x)))


class MaxPool1dHead(nn.Module):
    """conv1d -> MaxPool1d(3, 2, dilation=2) -> MaxPool1d(2, return_indices=True)."""

    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv1d(3, channels, 3, padding=1)
        self.pool = nn.MaxPool1d(3, 2, dilation=2)
        self.pool2 = nn.MaxPool1d(2, return_indices=True)

    def forward(self, x):
        return self.pool2(self.pool(self.conv(x)))


class LpPoolHead(nn.Module):
    """conv -> LPPool2d(2, 3, stride=2, ceil_mode=True): torch decomposes lp_pool into pow,
    avg_pool2d, sign, relu, mul and pow, so the bridge only translates the avg_pool2d."""

    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3)
        self.pool = nn.LPPool2d(2, 3, stride=2, ceil_mode=True)

    def forward(self, x):
        return self.pool(self.conv(x))


MODELS = {
    "resnet_head": (ResNetHead, (2, 3, 30, 30), [(1, 3, 45, 37), (3, 3, 64, 64)]),
    "pspnet_ppm": (PyramidPooling, (2, 16, 15, 17), [(1, 16, 23, 9), (2, 16, 40, 41)]),
    "max_indices": (MaxWithIndices, (2, 3, 15, 13), [(1, 3, 22, 9), (2, 3, 31, 40)]),
    "video3d": (Video3d, (2, 3, 5, 9, 13), [(1, 3, 7, 10, 11), (3, 3, 6, 12, 8)]),
    "divisor_override": (DivisorPool, (2, 3, 13, 14), [(1, 3, 20, 9), (2, 3, 31, 32)]),
    "strided_stem": (StridedStem, (2, 3, 14, 13), [(1, 3, 21, 9), (2, 3, 32, 31)]),
    "max_pool_indices": (MaxPoolIndices, (2, 3, 14, 13), [(1, 3, 21, 9), (2, 3, 32, 31)]),
    "strided_video": (StridedVideo, (2, 3, 8, 9, 10), [(1, 3, 9, 12, 11), (2, 3, 10, 8, 14)]),
    "max_pool1d_head": (MaxPool1dHead, (2, 3, 17), [(1, 3, 26), (2, 3, 40)]),
    "lp_pool_head": (LpPoolHead, (2, 3, 17, 16), [(1, 3, 20, 23), (3, 3, 14, 19)]),
}
