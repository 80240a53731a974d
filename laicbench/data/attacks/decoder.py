"""The AnyAttack decoder: a CLIP image embedding in, an image-sized perturbation out.

Architecture of AnyAttack (Zhang et al., CVPR 2025, arXiv 2410.05346; jiamingzhang94/AnyAttack,
``models/model.py``, the decoder its released checkpoints and VLM4Cluster load), written anew:
a linear layer maps the embedding to a 256 x s x s grid (s = image size / 16), then five
residual blocks with efficient attention alternate with four nearest-neighbour x2 upsampling
blocks (256 -> 128 -> 64 -> 32 -> 16 channels), and a 3 x 3 convolution gives the 3-channel
perturbation, unbounded (the caller clamps it to the budget). Module and parameter names match
the released checkpoints, so that their ``decoder_state_dict`` loads as is.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from laicbench.api.errors import UserError

# (in, out, key channels, heads, value channels) of each residual block; an upsampling block
# (in -> out channels) follows every residual block but the last
_RES_BLOCKS = ((256, 256, 64, 8, 256), (128, 128, 32, 8, 128), (64, 64, 16, 8, 64),
               (32, 32, 8, 8, 32), (16, 16, 4, 8, 16))  # fmt: skip
_SLOPE = 0.2


class EfficientAttention(nn.Module):
    """Efficient attention (Shen et al., WACV 2021) with a residual connection: per head, keys
    softmax-normalised over positions and queries over channels, so that the cost is linear in
    the number of positions. Each head gets ``channels // heads`` key and value channels, as in
    AnyAttack's code: the last block (4 key channels, 8 heads) has none, so its attention adds
    only the reprojection's bias."""

    def __init__(self, channels: int, key_channels: int, heads: int, value_channels: int):
        super().__init__()
        self.heads = heads
        self.keys = nn.Conv2d(channels, key_channels, 1)
        self.queries = nn.Conv2d(channels, key_channels, 1)
        self.values = nn.Conv2d(channels, value_channels, 1)
        self.reprojection = nn.Conv2d(value_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` (n, c, h, w) plus its attended reprojection."""
        n, _, h, w = x.shape
        dk = self.keys.out_channels // self.heads
        dv = self.values.out_channels // self.heads
        keys = self.keys(x)[:, : dk * self.heads].reshape(n, self.heads, dk, h * w)
        queries = self.queries(x)[:, : dk * self.heads].reshape(n, self.heads, dk, h * w)
        values = self.values(x)[:, : dv * self.heads].reshape(n, self.heads, dv, h * w)
        keys, queries = keys.softmax(dim=-1), queries.softmax(dim=2)
        context = keys @ values.transpose(-1, -2)  # (n, heads, key, value)
        attended = (context.transpose(-1, -2) @ queries).reshape(n, -1, h, w)
        return x + self.reprojection(attended)


class ResBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm, efficient attention, a (1 x 1 projected when the
    widths differ) skip connection and a leaky ReLU."""

    def __init__(self, cin: int, cout: int, key_channels: int, heads: int, value_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.activation = nn.LeakyReLU(_SLOPE)
        self.attention = EfficientAttention(cout, key_channels, heads, value_channels)
        self.skip_conv = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, same spatial size."""
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.activation(out + self.skip_conv(x))


class UpBlock(nn.Module):
    """Nearest-neighbour x2 upsampling, a 3 x 3 convolution, batch norm and a leaky ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.activation = nn.LeakyReLU(_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` at twice its size."""
        return self.activation(self.bn(self.conv(self.up(x))))


class AnyAttackDecoder(nn.Module):
    """Embedding (n, embed_dim) -> perturbation (n, 3, image_size, image_size); image_size must
    be a multiple of 16 (224 for the released checkpoints, which take 512-d ViT-B/32 CLIP
    embeddings)."""

    def __init__(self, embed_dim: int = 512, image_size: int = 224):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, not {image_size}")
        self.init_size = image_size // 16
        self.fc = nn.Sequential(nn.Linear(embed_dim, 256 * self.init_size**2))
        blocks: list[nn.Module] = []
        for i, widths in enumerate(_RES_BLOCKS):
            blocks.append(ResBlock(*widths))
            if i + 1 < len(_RES_BLOCKS):
                blocks.append(UpBlock(widths[1], _RES_BLOCKS[i + 1][0]))
        self.upsample_blocks = nn.ModuleList(blocks)
        self.final_conv = nn.Conv2d(_RES_BLOCKS[-1][1], 3, 3, padding=1)

    @property
    def embed_dim(self) -> int:
        """The embedding size the decoder takes."""
        return self.fc[0].in_features

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """The unbounded perturbation of each embedding."""
        out = self.fc(embedding.reshape(len(embedding), -1).float())
        out = out.reshape(len(out), 256, self.init_size, self.init_size)
        for block in self.upsample_blocks:
            out = block(out)
        return self.final_conv(out)


def load_decoder(path: str | Path, device: str = "cpu") -> AnyAttackDecoder:
    """The frozen decoder of the checkpoint at `path` (a ``torch.save`` of a dict holding
    ``decoder_state_dict``, AnyAttack's format, or of the state dict itself; a ``module.``
    prefix left by DistributedDataParallel is dropped), in eval mode on `device`. Its embedding
    size and image size are read from the weights. UserError (one line) when the file is absent
    or is not such a checkpoint."""
    path = Path(path).expanduser()
    where = f"--attack anyattack: decoder checkpoint {path}"
    if not path.is_file():
        raise UserError(
            f"{where} does not exist; give checkpoint=PATH of an AnyAttack decoder (e.g. "
            "AnyAttack-Cos coco_cos.pt from the AnyAttack release)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors alike
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{where} cannot be read as a torch checkpoint ({first})") from None
    state = payload.get("decoder_state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or "fc.0.weight" not in {
        k.removeprefix("module.") for k in state
    }:
        raise UserError(f"{where} holds no AnyAttack decoder weights (no decoder_state_dict)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    rows, embed_dim = state["fc.0.weight"].shape
    init_size = math.isqrt(rows // 256)
    if init_size < 1 or 256 * init_size**2 != rows:
        raise UserError(f"{where}: its first layer has {rows} outputs, not 256 x s x s")
    decoder = AnyAttackDecoder(embed_dim, 16 * init_size)
    try:
        decoder.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{where} does not fit AnyAttack's decoder ({first})") from None
    decoder = decoder.to(device).eval()
    for p in decoder.parameters():
        p.requires_grad_(False)
    return decoder
