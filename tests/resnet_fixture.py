"""CNN fixtures with torchvision's module structure, without importing torchvision (its wheels need
a CUDA torch on these machines).

:func:`resnet18` reproduces ``torchvision.models.resnet.resnet18`` (``ResNet(BasicBlock,
[2, 2, 2, 2])``): the same module names (``conv1``, ``bn1``, ``relu``, ``maxpool``,
``layer1..layer4`` of ``BasicBlock`` with ``conv1/bn1/relu/conv2/bn2`` and ``downsample =
Sequential(conv1x1, BatchNorm2d)``, ``avgpool = AdaptiveAvgPool2d((1, 1))``, ``fc``), the same
forward (in-place ReLU modules, ``out += identity``, ``torch.flatten(x, 1)``) and the same
initialisation (Kaiming-normal fan-out convs, BN weight 1 and bias 0). Two additions for small
tests: ``width`` (torchvision: 64, the stage widths are ``width * (1, 2, 4, 8)``) and
``in_channels`` (torchvision: 3).

:class:`ConvBNPool` is a small plain CNN: two Conv+BN+ReLU+MaxPool stages, ``nn.Flatten`` of a
spatial map into a hidden ``Linear`` and an output ``Linear``.

>>> m = resnet18(num_classes=10, width=8)
>>> [n for n, _ in m.named_children()]
['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4', 'avgpool', 'fc']
>>> type(m.layer2[0].downsample[1]).__name__, m.layer1[0].downsample is None
('BatchNorm2d', True)
>>> m(torch.randn(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding (torchvision's ``conv3x3``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution (torchvision's ``conv1x1``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's ``BasicBlock``: conv-bn-relu-conv-bn, plus the (downsampled) identity."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """torchvision's ``ResNet`` for ``BasicBlock`` (no groups, dilation or zero-init options)."""

    def __init__(self, layers: list[int], num_classes: int = 1000, width: int = 64,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * BasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * BasicBlock.expansion, stride),
                                       nn.BatchNorm2d(planes * BasicBlock.expansion))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def _forward_impl(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_impl(x)


def resnet18(num_classes: int = 1000, width: int = 64, in_channels: int = 3,
             seed: int | None = None) -> ResNet:
    """A ResNet-18 with torchvision's structure; ``seed`` seeds the initialisation."""
    if seed is not None:
        torch.manual_seed(seed)
    return ResNet([2, 2, 2, 2], num_classes=num_classes, width=width, in_channels=in_channels)


BN = ("weight", "bias", "running_mean", "running_var")


def resnet18_groups(width: int) -> list[tuple[set[tuple[str, int]], int]]:
    """The permutation groups of :func:`resnet18`, written out from the architecture as in Git
    Re-Basin's ResNet permutation spec: ``(members, size)`` for one residual stream per stage
    (the stem's output is stage 1's stream; ``fc`` reads stage 4's) and for each block's inner
    channel. A member is ``(tensor name, axis)``."""
    def bn(prefix: str) -> set[tuple[str, int]]:
        return {(f"{prefix}.{k}", 0) for k in BN}

    groups = []
    for s, w in enumerate((width, 2 * width, 4 * width, 8 * width), start=1):
        stream = set()
        if s == 1:
            stream |= {("conv1.weight", 0)} | bn("bn1")
        else:
            stream |= {(f"layer{s}.0.downsample.0.weight", 0)} | bn(f"layer{s}.0.downsample.1")
        for b in (0, 1):
            stream |= {(f"layer{s}.{b}.conv2.weight", 0)} | bn(f"layer{s}.{b}.bn2")
        stream |= {(f"layer{s}.1.conv1.weight", 1)}
        if s == 1:
            stream |= {("layer1.0.conv1.weight", 1)}
        if s < 4:
            stream |= {(f"layer{s + 1}.0.conv1.weight", 1),
                       (f"layer{s + 1}.0.downsample.0.weight", 1)}
        else:
            stream |= {("fc.weight", 1)}
        groups.append((stream, w))
        for b in (0, 1):
            inner = {(f"layer{s}.{b}.conv1.weight", 0), (f"layer{s}.{b}.conv2.weight", 1)}
            groups.append((inner | bn(f"layer{s}.{b}.bn1"), w))
    return groups


class ConvBNPool(nn.Module):
    """Conv-BN-ReLU-MaxPool twice, ``nn.Flatten``, a hidden Linear and an output Linear."""

    def __init__(self, in_channels: int = 1, channels: tuple[int, int] = (8, 12), hidden: int = 16,
                 num_classes: int = 10, side: int = 16) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(inplace=True),
            nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(c2 * (side // 4) ** 2, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.relu(self.fc1(self.flatten(self.features(x)))))


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial affine parameters and running statistics (in place), so
    that a permutation that forgets one of them changes the function."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return model


def digits_images(side: int = 16, channels: int = 1):
    """The bundled digits (standardised 8x8) upsampled bilinearly to ``side x side`` images with
    ``channels`` identical channels: a small real image task for ResNet-structured nets."""
    import torch.nn.functional as F

    from inspect_kit.data import DataBundle, load_data

    d = load_data("digits")

    def up(x: Tensor) -> Tensor:
        img = F.interpolate(x.reshape(-1, 1, 8, 8), size=(side, side), mode="bilinear",
                            align_corners=False)
        return img.expand(-1, channels, -1, -1).contiguous()

    return DataBundle(f"digits{side}", up(d.x_train), d.y_train, up(d.x_test), d.y_test,
                      n_classes=10, image_shape=(channels, side, side))
