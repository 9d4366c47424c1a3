"""Encoder f and the two heads of the paper (Sec. III, Fig. 2) (Book: chapter 3).

``ASDModel`` maps a log-mel spectrogram to

* an embedding ``e = f(x)`` of 128 dimensions,
* a machine-type logit ``g_affine(||e||^2)`` (target machine type or not, Eq. 2),
* K product logits ``g_product(e)`` (which section of the target type, Eq. 1).

Choices this project made where the paper is silent (Book: chapter 3):

* Encoder: timm ``efficientnet_b0`` with one input channel and global average
  pooling over the last convolutional map (1280 features), no dropout and no
  drop-path (the paper mentions neither).  The "two non-linear transformations"
  to the 128-d embedding are ``Linear(1280, 128) -> BatchNorm1d -> PReLU ->
  Linear(128, 128)``: the pooled EfficientNet features are the output of the
  first non-linearity (the backbone's last SiLU), the PReLU is the second.  The
  embedding itself is left linear so its norm is free to grow or shrink.
* g_affine: ``scale * ||e||^2 / emb_dim + bias`` with a learned scalar scale
  (initialised to 1) and bias (initialised to 0).  Dividing by the dimension is
  a harmless rescale that keeps the initial logits near 1 instead of near 128.
  The sign of ``scale`` is learned: the model decides whether target-type
  sounds sit far from or near the centre of the hypersphere.
* g_product: ``Linear(128, K)``.
* Weights: from scratch by default (offline).  ``pretrained="noisy_student"``
  loads timm's ``tf_efficientnet_b0.ns_jft_in1k`` (needs the Hugging Face hub;
  that variant uses TensorFlow "same" padding, so the backbone becomes
  ``tf_efficientnet_b0``); a path loads a local state dict, whose 3-channel stem
  is summed over the colour channels into one channel.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Backbone used when no pretrained weights are asked for (and for local files).
DEFAULT_BACKBONE = "efficientnet_b0"
#: timm name of the Noisy Student EfficientNet-B0 weights the paper cites.
NOISY_STUDENT = "tf_efficientnet_b0.ns_jft_in1k"


def _create_backbone(name: str, pretrained_hub: bool = False) -> nn.Module:
    from . import progress  # noqa: F401  (before timm: keeps its tqdm.auto import quiet in a notebook)
    import timm  # local import: keeps `import minasd.model` cheap

    return timm.create_model(
        name,
        pretrained=pretrained_hub,
        in_chans=1,
        num_classes=0,  # no classifier: forward returns pooled features
        global_pool="avg",
        drop_rate=0.0,
        drop_path_rate=0.0,
    )


def _stem_to_one_channel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sum the colour channels of any 3-channel first convolution (B, 3, k, k) -> (B, 1, k, k)."""
    out = dict(state)
    for key, value in state.items():
        if key.endswith("conv_stem.weight") and value.dim() == 4 and value.shape[1] == 3:
            out[key] = value.sum(dim=1, keepdim=True)
    return out


def _brief(err: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, at most ``limit`` characters of message."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return f"{type(err).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _describe(obj: Any) -> str:
    """A few words on what a loaded file held, for error messages."""
    if isinstance(obj, dict):
        bad = next(((k, v) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
        return "an empty dict" if bad is None else f"a dict whose entry {bad[0]!r} is a {type(bad[1]).__name__}"
    return f"a {type(obj).__name__}"


def load_torch_file(path: str | Path, missing: str, unreadable: str, fix: str) -> Any:
    """Read a torch file safely, onto the CPU: the package's one reader of torch files (Book: chapter 4).

    ``weights_only=True``: the file may hold only tensors, numbers, strings, lists, tuples
    and dicts, never pickled code, so a file from somewhere else cannot run anything on the
    reader's machine.  Callers check what the plain data hold
    (:func:`minasd.runs.load_checkpoint`, :func:`load_backbone_weights`).

    Args:
        path: the file.
        missing: the FileNotFoundError's message when ``path`` is not a file.
        unreadable, fix: the ValueError's message when torch cannot read it (truncated,
            another format, pickled objects other than plain data) is
            ``"<unreadable> (<reason>); <fix>"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, forbidden globals: all mean "not such a file"
        raise ValueError(f"{unreadable} ({_brief(err)}); {fix}") from None


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local EfficientNet-B0 state dict into ``backbone`` (Book: chapter 3).

    Accepts a plain state dict or a checkpoint holding one under ``"state_dict"``
    or ``"model"``; keys may carry a ``"backbone."`` or ``"module."`` prefix.  The
    ImageNet classifier is dropped and a 3-channel stem is summed to 1 channel.

    The file is read with :func:`load_torch_file` (``weights_only=True``: tensors and plain
    containers only, never pickled code), like :func:`minasd.runs.load_checkpoint`: a weights
    file downloaded from somewhere cannot run anything on the reader's machine.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable torch file (truncated, another format,
            pickled objects other than plain data), holds no state dict, or its weights
            do not fit the backbone (names the file and the keys).
    """
    path = Path(path)
    obj = load_torch_file(path, missing=f"pretrained weights file {path} does not exist",
                          unreadable=f"pretrained weights file {path} is not a readable torch state dict",
                          fix="it may be truncated or saved as a whole pickled model: save model.state_dict() "
                              "with torch.save")
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not (isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in obj.items())):
        raise ValueError(f"{path}: expected a state dict (mapping of parameter names to tensors), "
                         f"found {_describe(obj)}")
    state = {}
    for key, value in obj.items():
        for prefix in ("module.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith("classifier."):
            continue
        state[key] = value
    state = _stem_to_one_channel(state)
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as err:  # same names, other shapes (e.g. another EfficientNet size)
        raise ValueError(f"{path}: weights do not fit {type(backbone).__name__} ({_brief(err)})") from None
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit {type(backbone).__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )


class ASDModel(nn.Module):
    """EfficientNet-B0 encoder f with g_product and g_affine heads (Book: chapter 3).

    Args:
        n_sections: K, the number of product classes (sections) of the target type.
        emb_dim: embedding dimension (128 in the paper).
        pretrained: None (from scratch, the default), ``"noisy_student"`` (timm hub
            weights; needs network access) or a path to a local state dict.
        backbone: timm model name; default ``efficientnet_b0``, or
            ``tf_efficientnet_b0`` when ``pretrained="noisy_student"``.

    Forward:
        x: log-mel, (B, n_mels, frames) or (B, 1, n_mels, frames).
        Returns ``(embedding (B, emb_dim), machine_logit (B,), product_logits (B, K))``.

    >>> m = ASDModel(n_sections=6)
    >>> e, m_logit, p_logits = m.eval()(torch.zeros(2, 224, 126))
    >>> tuple(e.shape), tuple(m_logit.shape), tuple(p_logits.shape)
    ((2, 128), (2,), (2, 6))
    """

    def __init__(
        self,
        n_sections: int,
        emb_dim: int = 128,
        pretrained: str | Path | None = None,
        backbone: str | None = None,
    ):
        super().__init__()
        if n_sections < 1:
            raise ValueError(f"n_sections must be >= 1, got {n_sections}")
        if backbone is None:
            backbone = "tf_efficientnet_b0" if pretrained == "noisy_student" else DEFAULT_BACKBONE
        self.n_sections = int(n_sections)
        self.emb_dim = int(emb_dim)
        self.backbone_name = backbone
        self.pretrained = None if pretrained is None else str(pretrained)

        if pretrained == "noisy_student":
            hub_name = NOISY_STUDENT if backbone == "tf_efficientnet_b0" else f"{backbone}.ns_jft_in1k"
            try:
                self.backbone = _create_backbone(hub_name, pretrained_hub=True)
            except Exception as err:  # any hub/network/cache failure
                raise RuntimeError(
                    f"could not load the Noisy Student weights {hub_name!r} from the Hugging Face hub "
                    f"({type(err).__name__}: {err}). This needs hub access; without it, download the "
                    "weights elsewhere and pass pretrained=<local state-dict file>, or train from "
                    "scratch with pretrained=None."
                ) from err
        else:
            self.backbone = _create_backbone(backbone)
            if pretrained is not None:
                load_backbone_weights(self.backbone, pretrained)

        # width of the pooled output (1280 for B0); timm names it head_hidden_size where a
        # conv head follows the feature stage (MobileNetV3), num_features otherwise
        n_features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.projection = nn.Sequential(
            nn.Linear(n_features, emb_dim),
            nn.BatchNorm1d(emb_dim),
            nn.PReLU(),
            nn.Linear(emb_dim, emb_dim),
        )
        self.g_product = nn.Linear(emb_dim, self.n_sections)
        # g_affine: logit = scale * ||e||^2 / emb_dim + bias, sign of scale learned.
        self.affine_scale = nn.Parameter(torch.ones(()))
        self.affine_bias = nn.Parameter(torch.zeros(()))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): log-mel (B, n_mels, frames) or (B, 1, n_mels, frames) -> (B, emb_dim)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (B, 1, n_mels, frames)
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"ASDModel expects (B, n_mels, frames) or (B, 1, n_mels, frames), got {tuple(x.shape)}")
        return self.projection(self.backbone(x))

    def g_affine(self, embedding: torch.Tensor) -> torch.Tensor:
        """Machine-type logit from the squared norm of the embedding, (B, D) -> (B,)."""
        sq_norm = embedding.float().square().sum(dim=1) / self.emb_dim
        return self.affine_scale * sq_norm + self.affine_bias

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.embed(x)  # (B, D)
        return e, self.g_affine(e), self.g_product(e)

    # --- rebuilding a run's model ------------------------------------------
    def to_spec(self) -> dict[str, Any]:
        """A small JSON-able dict from which :meth:`from_spec` rebuilds the architecture.

        ``pretrained`` is recorded for provenance only: rebuilding never
        downloads, the trained weights come from the checkpoint.
        """
        return {
            "n_sections": self.n_sections,
            "emb_dim": self.emb_dim,
            "backbone": self.backbone_name,
            "pretrained": self.pretrained,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "ASDModel":
        """Rebuild the architecture of :meth:`to_spec` with untrained weights (never downloads)."""
        model = cls(n_sections=spec["n_sections"], emb_dim=spec.get("emb_dim", 128),
                    pretrained=None, backbone=spec.get("backbone", DEFAULT_BACKBONE))
        model.pretrained = spec.get("pretrained")  # provenance of the trained weights
        return model
