"""A run's configuration: everything that determines its results (the device does not), as config.json holds it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from supsup_core.data.streams import StreamConfig
from supsup_core.nn.method import Method
from supsup_core.nn.models import ModelConfig
from supsup_core.train.methods import get_method
from supsup_core.train.training import TrainConfig

__all__ = ["FORMAT_VERSION", "READS_FORMATS", "RunConfig", "config_diff"]

# 2: weights, mask and scores files carry a checksum (1 had none); 3: task files hold any task module's
# state ("bits."/"state." tensors) and config.json names the method
FORMAT_VERSION = 3
READS_FORMATS = (2, 3)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's results (the device does not)."""

    model: ModelConfig
    stream: StreamConfig
    train: TrainConfig
    seed: int = 0
    save_scores: bool = False
    transfer: bool = False  # start each task's scores at the mean of earlier tasks' saved scores (implies save_scores)
    method: str = "supsup"  # a key of supsup_core.train.methods.METHODS
    context_powers: bool = False  # PSP rotation/complex: task t uses C^(t+1) of one context

    def __post_init__(self) -> None:
        method = self.build_method()
        method.check_model(self.model)
        if (self.save_scores or self.transfer) and not method.starts_from_scores:
            raise ValueError(f"method {self.method!r} trains no supermask scores, so there are none to save or transfer "
                             "from; drop --save-scores/--transfer or use --method supsup.")
        if self.transfer:  # each task starts at the mean of the earlier tasks' scores, read back from their files
            object.__setattr__(self, "save_scores", True)
        if self.model.num_tasks != 0:
            raise ValueError(
                f"a run's model config must have num_tasks=0 (tasks are added as they are trained); got {self.model.num_tasks}. "
                "The number of tasks is stream.num_tasks."
            )

    def build_method(self) -> Method:
        """The run's :class:`~supsup_core.nn.method.Method`, with the run's seed and method options."""
        return get_method(self.method, seed=self.seed, context_powers=self.context_powers)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "method": self.method, "context_powers": self.context_powers, "seed": self.seed,
                "save_scores": self.save_scores, "transfer": self.transfer,
                "model": self.model.to_dict(), "stream": self.stream.to_dict(), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        if not isinstance(data, Mapping):
            raise ValueError(f"a run config must be a JSON object; got {type(data).__name__} {data!r:.80}. Re-create the run.")
        version = data.get("format_version")
        if version not in READS_FORMATS or isinstance(version, bool):
            older = isinstance(version, int) and not isinstance(version, bool) and version < min(READS_FORMATS)
            raise ValueError(
                f"run config has format_version {version!r}; this code reads {' and '.join(map(str, READS_FORMATS))}. "
                + ("That run was written before its files carried checksums, so they cannot be verified: train it "
                   "again into a new --out directory with the same options." if older else "Re-create the run.")
            )
        try:
            return cls(model=ModelConfig.from_dict(data["model"]), stream=StreamConfig.from_dict(data["stream"]),
                       train=TrainConfig.from_dict(data["train"]), seed=int(data["seed"]), save_scores=bool(data["save_scores"]),
                       transfer=bool(data.get("transfer", False)), method=data.get("method", "supsup"),
                       context_powers=bool(data.get("context_powers", False)))
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"run config is missing or has malformed fields ({type(err).__name__}: {err}); re-create the run.") from err


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The differences between two config dicts, one ``"key.path: old -> new"`` line each."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in config_diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]
