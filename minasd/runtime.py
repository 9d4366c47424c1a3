"""Device settings of a training run, chosen in one place (Book: chapter 4).

The trainer runs one code path on every device.  Where CPU and CUDA differ, the
difference is a *value* in :class:`RuntimeSettings`, chosen by
:func:`runtime_settings`, so that a CPU test runs the very lines a GPU run does:

* memory format: ``channels_last`` on CPU and CUDA.  On CUDA it is the layout of
  the fast cuDNN kernels; on CPU (oneDNN) it was measured to speed up the
  training step of the depthwise encoders 1.4-1.5x (issue 13, 2-core Xeon with
  AVX-512 and AMX, batch 32, input 1x224x126, median of 4 steps after warm-up):
  efficientnet_b0 2.19 s -> 1.45 s, mobilenetv3_small_050 0.275 s -> 0.196 s,
  resnet18 1.48 s -> 1.34 s.
* autocast dtype: on CUDA bf16 where the GPU computes it natively (compute
  capability 8.0 and newer: A100, L4, H100, ...) and float16 with a gradient
  scaler on older GPUs (a T4, Colab's free GPU, is 7.5: bf16 there is emulated and
  has no tensor cores; :func:`cuda_autocast_dtype`).  On CPU bf16 autocast pays only for encoders made
  of dense convolutions (AMX) and hurts depthwise ones, so it is looked up per
  encoder in :data:`CPU_BF16` (measured figures there) and used only when the CPU
  has native bf16 instructions; an encoder not in the table runs in float32 (the
  safe default: measure before adding one).
* ``torch.compile``: as asked (``TrainConfig.compile``); off by default.
* host -> device copies: from pinned memory without blocking on CUDA, plain
  copies on CPU (where ``.to("cpu")`` is a no-op).

These settings change speed and, through bf16, rounding, but not what is
trained: they are *runtime* values, recorded in ``run.json`` (``runtime``) but
not part of the configuration, so a run started on a GPU may be resumed on a CPU
(its later epochs then round differently).

>>> rt = runtime_settings("cpu", "efficientnet_b0")
>>> rt.memory_format, rt.autocast_dtype
('channels_last', None)
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

#: bf16 autocast on CPU, per timm encoder: True where it was measured to help.
#: Training step at batch 32, input 1x224x126, channels_last, 2 threads of a Xeon
#: with AVX-512 and AMX (issue 13), float32 -> bf16 autocast:
#:
#: ======================  ==========  ==========  ======
#: encoder                 float32     bf16        bf16?
#: ======================  ==========  ==========  ======
#: resnet18                1.34 s      0.73 s      yes (dense convolutions run on AMX)
#: efficientnet_b0         1.45 s      1.96 s      no (depthwise convolutions get slower)
#: mobilenetv3_small_050   0.196 s     0.410 s     no (depthwise)
#: ======================  ==========  ==========  ======
#:
#: ``tf_efficientnet_b0`` (the Noisy Student variant) has B0's layers: not measured,
#: listed as B0.
CPU_BF16: dict[str, bool] = {
    "resnet18": True,
    "efficientnet_b0": False,
    "tf_efficientnet_b0": False,
    "mobilenetv3_small_050": False,
}

_MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_has_bf16() -> bool:
    """True when oneDNN can run bf16 natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class RuntimeSettings:
    """How a run uses its device (values only; see the module docstring for why).

    Attributes:
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        memory_format: ``"channels_last"`` or ``"contiguous"``, of the model and its input.
        autocast_dtype: ``"bfloat16"`` (mixed precision) or None (float32).
        compile: wrap the model in ``torch.compile``.
        pin_memory: copy host batches through pinned memory without blocking.
    """

    device: str
    memory_format: str = "channels_last"
    autocast_dtype: str | None = None
    compile: bool = False
    pin_memory: bool = False

    def __post_init__(self):
        if self.memory_format not in _MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {sorted(_MEMORY_FORMATS)}, got {self.memory_format!r}")
        if self.autocast_dtype is not None and self.autocast_dtype not in _DTYPES:
            raise ValueError(f"autocast_dtype must be None or one of {sorted(_DTYPES)}, got {self.autocast_dtype!r}")

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def device_name(self) -> str:
        """The accelerator's name (e.g. "NVIDIA T4"), or "cpu"."""
        dev = self.torch_device
        return torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type

    def to_dict(self) -> dict:
        """Plain values for ``run.json``."""
        return dataclasses.asdict(self)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device in the chosen memory format (in place, returned)."""
        return model.to(self.torch_device, memory_format=_MEMORY_FORMATS[self.memory_format])

    def maybe_compile(self, model: torch.nn.Module) -> torch.nn.Module:
        """``torch.compile(model)`` when asked for, else ``model``."""
        return torch.compile(model) if self.compile else model

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, frames) -> model input (B, 1, n_mels, frames) in the chosen memory format."""
        return x.unsqueeze(1).contiguous(memory_format=_MEMORY_FORMATS[self.memory_format])

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of the forward pass (disabled for float32)."""
        dtype = _DTYPES[self.autocast_dtype] if self.autocast_dtype else torch.bfloat16
        return torch.autocast(device_type=self.torch_device.type, dtype=dtype,
                              enabled=self.autocast_dtype is not None)

    def grad_scaler(self) -> "torch.amp.GradScaler":
        """The loss scaler of the training step: active for float16 autocast only (its small
        exponent range needs it), a pass-through otherwise, so every device runs the same lines."""
        return torch.amp.GradScaler(self.torch_device.type, enabled=self.autocast_dtype == "float16")

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        """A host array -> a tensor on the device (no host-device synchronisation on CUDA)."""
        t = torch.from_numpy(np.ascontiguousarray(array))
        if self.pin_memory:
            t = t.pin_memory()
        return t.to(self.torch_device, non_blocking=self.pin_memory)

    def setup_backends(self) -> None:
        """Process-wide backend switches of this device (cuDNN autotuning on CUDA: the crop
        shape is fixed, so the fastest kernels are picked once)."""
        if self.torch_device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def synchronize(self) -> None:
        """Wait for the device's queued work (for timing); a no-op on CPU."""
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)


def cuda_autocast_dtype(capability: tuple[int, int]) -> str:
    """The autocast dtype of a CUDA GPU of this compute capability: bf16 from 8.0 on (native
    bf16 tensor cores), float16 before (e.g. the T4 of a free Colab session, 7.5).

    >>> cuda_autocast_dtype((7, 5)), cuda_autocast_dtype((8, 0)), cuda_autocast_dtype((9, 0))
    ('float16', 'bfloat16', 'bfloat16')
    """
    return "bfloat16" if tuple(capability) >= (8, 0) else "float16"


def runtime_settings(device: str | torch.device, backbone: str | None, compile: bool = False) -> RuntimeSettings:
    """The settings a run on ``device`` with encoder ``backbone`` uses (Book: chapter 4).

    Args:
        device: a resolved torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        backbone: timm encoder name (None = the default, ``efficientnet_b0``).
        compile: wrap the model in ``torch.compile``.

    >>> runtime_settings("cpu", "resnet18").autocast_dtype in (None, "bfloat16")
    True
    >>> runtime_settings("cpu", "mobilenetv3_small_050").autocast_dtype is None
    True
    """
    from .model import DEFAULT_BACKBONE

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    name = backbone or DEFAULT_BACKBONE
    if dev.type == "cuda":
        dtype = cuda_autocast_dtype(torch.cuda.get_device_capability(dev))
        return RuntimeSettings(str(dev), "channels_last", dtype, bool(compile), pin_memory=True)
    if dev.type == "cpu":
        bf16 = CPU_BF16.get(name, False) and cpu_has_bf16()
        return RuntimeSettings("cpu", "channels_last", "bfloat16" if bf16 else None, bool(compile))
    # other backends (mps, xpu, ...): untested here, plain float32 in the default layout
    return RuntimeSettings(str(dev), "contiguous", None, bool(compile))
