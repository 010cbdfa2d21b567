"""Did a lerobot checkpoint's ``model.safetensors`` actually end up in the model?

lerobot loads weights non-strictly: the base ``PreTrainedPolicy.from_pretrained`` defaults to
``strict=False`` and only logs a tensor the file lacks (that parameter keeps its random initial value), and
the openpi family (pi0, pi05, pi0_fast) catches every loading error, prints a warning and returns the randomly
initialized model. Either way a robot would be driven by random weights. :func:`weight_gaps` compares the
file with the loaded model:

* every tensor of the model's ``state_dict`` is set from the file (or shares its storage with one that is: tied
  weights are saved once);
* every tensor of the file is used by the model;
* the values agree (the first row of each tensor is compared; a model kept in another dtype than the file,
  e.g. bfloat16, is compared with a relative tolerance of 1e-2).

File names are matched to model names as lerobot matches them: the same name, or for a policy class with
openpi's key fix (``_fix_pytorch_state_dict_keys``), the fixed name with the ``model.`` prefix that family
adds. The file is read lazily (safetensors slices), so a multi-gigabyte checkpoint is not loaded twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: relative tolerance when the model holds a tensor in another dtype than the file (bfloat16 ~ 3 digits).
CAST_RTOL = 1e-2


def _file_to_model_names(policy: Any, file_keys: list[str]) -> dict[str, list[str]]:
    """For each file tensor, the model ``state_dict`` names lerobot would load it into."""
    import torch

    fix: Callable[..., dict[str, Any]] | None = getattr(policy, "_fix_pytorch_state_dict_keys", None)
    names: dict[str, list[str]] = {}
    for key in file_keys:
        targets = [key]
        if fix is not None:
            fixed = fix({key: torch.empty(0)}, getattr(policy, "config", None))
            targets += [k if k.startswith("model.") else f"model.{k}" for k in fixed]
        names[key] = list(dict.fromkeys(targets))
    return names


def _first_row(tensor: Any) -> Any:
    return tensor.reshape(1) if tensor.ndim == 0 else tensor[:1]


def weight_gaps(policy: Any, model_file: Path, limit: int = 8) -> list[str]:
    """Problems with ``policy``'s weights as loaded from ``model_file``; empty when the file is in the model.

    Args:
        policy: a loaded lerobot policy (a ``torch.nn.Module``).
        model_file: the checkpoint's ``model.safetensors``.
        limit: at most this many tensors are named per kind of problem (the count is always given).
    """
    import torch
    from safetensors import safe_open

    state = policy.state_dict()
    missing: list[str] = []
    unused: list[str] = []
    differ: list[str] = []
    covered: set[str] = set()
    with safe_open(str(model_file), framework="pt", device="cpu") as f:
        file_keys = list(f.keys())
        for key, targets in _file_to_model_names(policy, file_keys).items():
            hits = [t for t in targets if t in state]
            if not hits:
                unused.append(key)
                continue
            stored = f.get_slice(key)
            shape = tuple(stored.get_shape())
            expected = _first_row(f.get_tensor(key)) if not shape else stored[:1]
            for name in hits:
                covered.add(name)
                value = state[name].detach()
                if tuple(value.shape) != shape:
                    differ.append(f"{name} (file shape {shape}, model {tuple(value.shape)})")
                    continue
                got = _first_row(value).to("cpu")
                if got.dtype == expected.dtype:  # exact; NaN where the file has NaN is loaded, not lost
                    same = (
                        torch.allclose(got, expected, rtol=0.0, atol=0.0, equal_nan=True)
                        if got.is_floating_point()
                        else torch.equal(got, expected)
                    )
                else:
                    same = torch.allclose(got.float(), expected.float(), rtol=CAST_RTOL, atol=CAST_RTOL * 1e-2)
                if not same:
                    differ.append(name)
    pointers = {state[n].data_ptr() for n in covered if state[n].numel()}
    for name, value in state.items():
        if name not in covered and not (value.numel() and value.data_ptr() in pointers):
            missing.append(name)

    def listed(what: str, names: list[str]) -> str:
        more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
        return f"{len(names)} {what}: " + ", ".join(names[:limit]) + more

    gaps = []
    if missing:
        gaps.append(listed("model tensor(s) not in the file (left at their random initial values)", missing))
    if unused:
        gaps.append(listed("file tensor(s) the model does not use", unused))
    if differ:
        gaps.append(listed("tensor(s) whose loaded values differ from the file", differ))
    return gaps
