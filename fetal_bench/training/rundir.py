"""One run directory layer for every training loop: resumable snapshots that can be trusted.

Both trainers (the baselines' :func:`fetal_bench.training.train` and the generators'
:func:`fetal_bench.generators.training.train_lora`) keep their resumable state here, in the same
layout::

    <run>/checkpoints/step-00000120/
        weights.safetensors   the tensors the loop chose to keep (a whole model, or only the
                              trainable LoRA parameters of a diffusion model)
        trainer_state.pt      optimizer, LR scheduler and RNG states: tensors and plain containers
                              only, reloaded with ``weights_only=True`` (no pickled code)
        state.json            the loop's progress counters, the step, and the run's fingerprint

* **Fingerprint.** A run is identified by a hash of its configuration and inputs
  (:func:`fingerprint`). A snapshot whose fingerprint differs belongs to another run and is
  never resumed from.
* **Atomic.** A snapshot is written to a temporary sibling and renamed into place: a crash
  leaves either the old snapshot or the new one, never half of one. Unreadable snapshots are
  skipped, so resuming falls back to the previous one.
* **Keep the last N.** Older snapshots are deleted after a new one is complete.

Why not accelerate's ``save_state``: it writes whole models (a diffusion run would write its
frozen 860 M-parameter UNet at every checkpoint where only ~1 M LoRA parameters change) and
it has no notion of which run a state belongs to. The RNG and optimizer handling here is the
same idea, restricted to what ``torch.load(weights_only=True)`` accepts.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fetal_bench._io import atomic_directory, write_json_atomic
from fetal_bench.errors import FetalBenchError

CHECKPOINTS = "checkpoints"
WEIGHTS_FILE = "weights.safetensors"
TRAINER_STATE_FILE = "trainer_state.pt"
STATE_FILE = "state.json"
_STEP_DIGITS = 8


def fingerprint(record: Mapping[str, Any]) -> str:
    """sha256 of ``record`` as JSON with sorted keys (non-JSON values by ``str``).

    ``json.dumps``'s default separators: finished LoRA runs recorded their key this way, and a
    rerun of the same configuration must still recognise them.
    """
    canonical = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A complete resumable snapshot of a run: where it is, its step, and the loop's counters."""

    path: Path
    step: int
    state: dict[str, Any]


class RunDirectory:
    """The resumable snapshots of one run (identified by ``fingerprint``) under ``root``."""

    def __init__(self, root: str | Path, *, fingerprint: str, keep_last: int = 1):
        if keep_last < 1:
            raise ValueError("keep_last must be at least 1")
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.keep_last = keep_last

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def snapshots(self) -> list[Snapshot]:
        """This run's readable snapshots, newest first (other runs' and damaged ones skipped)."""
        found = []
        for path in sorted(self.checkpoints.glob("step-*"), reverse=True):
            try:
                record = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # a damaged snapshot: fall back to an older one
            if (isinstance(record, dict) and record.get("fingerprint") == self.fingerprint
                    and isinstance(record.get("step"), int) and (path / WEIGHTS_FILE).is_file()
                    and (path / TRAINER_STATE_FILE).is_file()):
                found.append(Snapshot(path, record["step"], dict(record.get("state") or {})))
        return found

    def latest(self) -> Snapshot | None:
        snapshots = self.snapshots()
        return snapshots[0] if snapshots else None

    def save(self, step: int, *, weights, optimizer, scheduler=None, state: Mapping[str, Any] | None = None,
             rng: bool = False) -> Path:
        """Write the snapshot of ``step`` atomically, then prune to the last ``keep_last``.

        ``weights`` is a ``torch.nn.Module`` (its whole state, shared tensors once) or a mapping
        of names to tensors (e.g. only the trainable parameters). ``rng``: also keep torch's
        (and CUDA's) global RNG state, for loops that draw from it.
        """
        import torch
        from safetensors.torch import save_file, save_model

        target = self.checkpoints / f"step-{step:0{_STEP_DIGITS}d}"
        with atomic_directory(target, overwrite=True) as tmp:
            if isinstance(weights, torch.nn.Module):
                save_model(weights, str(tmp / WEIGHTS_FILE))
            else:
                save_file({name: tensor.detach().contiguous() for name, tensor in weights.items()},
                          str(tmp / WEIGHTS_FILE))
            trainer: dict[str, Any] = {"optimizer": optimizer.state_dict()}
            if scheduler is not None:
                trainer["scheduler"] = scheduler.state_dict()
            if rng:
                trainer["rng"] = {"torch": torch.get_rng_state()}
                if torch.cuda.is_available():
                    trainer["rng"]["cuda"] = torch.cuda.get_rng_state_all()
            torch.save(trainer, tmp / TRAINER_STATE_FILE)
            write_json_atomic(tmp / STATE_FILE, {"step": step, "fingerprint": self.fingerprint,
                                                 "state": dict(state or {})})
        for old in sorted(self.checkpoints.glob("step-*"))[:-self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def restore(self, snapshot: Snapshot, *, weights, optimizer, scheduler=None, rng: bool = False) -> None:
        """Load ``snapshot`` into ``weights`` (a module, or a callable taking the tensor dict),
        ``optimizer``, ``scheduler`` and, with ``rng``, torch's RNG; a clean error when damaged."""
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file, load_model

        fix = "Pass --overwrite to start the run over, or choose another --output."
        weights_path = snapshot.path / WEIGHTS_FILE
        try:
            if isinstance(weights, torch.nn.Module):
                load_model(weights, str(weights_path), strict=True)
            else:
                weights(load_file(str(weights_path)))
        except (OSError, SafetensorError, RuntimeError, KeyError) as err:
            raise FetalBenchError(f"Cannot resume: {weights_path} does not hold this run's weights "
                                  f"({type(err).__name__}: {str(err)[:200]}).", fix) from None
        path = snapshot.path / TRAINER_STATE_FILE
        try:
            # weights_only: tensors and plain containers; a pickle asking for anything else
            # (code, arbitrary classes) is refused by torch's restricted unpickler.
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FetalBenchError(f"The resumable state {path} is missing.", fix) from None
        except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, zipfile.BadZipFile) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise FetalBenchError(f"Cannot resume: {path} is not a trainer state fetal-bench wrote ({first}).",
                                  fix) from None
        try:
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(saved["scheduler"])
            if rng:
                torch.set_rng_state(saved["rng"]["torch"])
                if "cuda" in saved["rng"] and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise FetalBenchError(f"Cannot resume: {path} does not hold this run's optimizer and RNG state "
                                  f"({type(err).__name__}: {str(err)[:200]}).", fix) from None

    def clear(self) -> None:
        """Remove every snapshot (a finished run keeps only its final outputs)."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
