"""The keys of a run (config.yaml `training`, `training_by_dataset`, `runs`): defaults and checks.

Torch-free, so the workflow checks every key and value when it builds the DAG, before any job runs.
`TrainConfig` holds the training keys, the aggregator's architecture among them (the one place of
their defaults: the paper's); `ModelConfig` is the architecture a checkpoint stores. A run also has
keys that are not training keys: `method`, `datasets`, `embeddings`, `reading` (RUN_KEYS) and the
evaluation keys `smooth_steps` and `checkpoints` (EVALUATION_KEYS: they change the scores, not the
weights, so changing them redoes the evaluations only).

    cfg = TrainConfig.from_dict({"features": "qa", "epochs": 40}); model_config(cfg, input_dim=576)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from llmvs import LlmvsError

AGGREGATORS = ("attention", "mlp")
SELECTIONS = ("val_loss", "val_rho", "val_tau", "last", "test_rho", "shard_rho")
TEST_SELECTIONS = ("test_rho", "shard_rho")  # the rules that read test videos (for comparison only)
LOSSES = ("mse", "pearson", "shot_pearson")
TARGETS = ("gtscore", "users")
METHODS = ("model", "ridge", "feature", "zero_shot", "zero_shot_expected", "random", "oracle")
RUN_KEYS = ("method", "datasets", "embeddings", "reading")  # run keys that are neither training nor evaluation keys


def reads_correlations(selection: str) -> bool:
    """Whether a selection rule ranks epochs by correlations (which cost more than the loss and, on SumMe,
    need the shots)."""
    return selection not in ("val_loss", "last")
EVALUATION_KEYS = ("smooth_steps", "checkpoints")
# `reading: as_authors` reads a run as the published numbers most likely were (official-protocol §8.1-8.2):
# a trained run keeps the epoch with the best test rho on the rank-0 shard (selection shard_rho), every
# run is averaged over that shard only, and `random` is the best of `checkpoints` draws per split
READINGS = ("honest", "as_authors")
AUTHORS_EVALUATIONS = 400  # the authors' schedule: 2 evaluations per epoch x 200 epochs


@dataclass
class ModelConfig:
    """The aggregator's architecture, as stored in a checkpoint (defaults: `TrainConfig`)."""

    input_dim: int
    features: str | list  # embedding column(s) the model reads; see llmvs.embeddings.feature_matrix
    aggregator: str
    d_model: int
    layers: int
    heads: int
    dim_feedforward: int
    dropout: float
    attention_dropout: float | None
    positional_encoding: bool
    input_norm: bool
    standardize: bool
    center: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    features: str | list = "qa"  # column(s) of the embeddings files (llmvs.embeddings)
    aggregator: str = "attention"  # or "mlp": the paper's "w/o SA" ablation
    d_model: int = 2048  # M in the paper
    layers: int = 3
    heads: int = 2
    dim_feedforward: int = 2048  # PyTorch's default, as in the authors' code
    dropout: float = 0.1
    attention_dropout: float | None = None  # parity: None = dropout (0.1), as the authors' encoder
    positional_encoding: bool = False  # parity: the authors' encoder has none
    input_norm: bool = False  # parity: not in the authors' model; LayerNorm on the states first
    standardize: bool = False  # parity: not in the authors' model; z-score inputs by the fitting videos' statistics
    center: bool = False  # parity: not in the authors' model; subtract each video's mean step from its steps
    metrics_every: int = 1  # validation tau/rho/F1 every this many epochs (the loss every epoch)
    epochs: int = 60
    lr: float = 1e-4
    weight_decay: float = 0.01
    t_max: int | None = None  # cosine period in epochs (None = epochs); the authors: 100 of 200
    eta_min: float = 1e-6
    grad_clip: float = 1.0  # parity: the authors clip the global norm at 0.01 (presets/paper.yaml)
    accumulate: int = 1
    val_fraction: float = 0.2
    val_seed: int = 1112  # draws each split's validation videos (+ split), whatever the models' seeds
    patience: int | None = None  # stop a model once its validation loss has not improved for this many epochs
    # (selection val_loss; None = every epoch). The epochs before the stop are the same, so the selected
    # checkpoint changes only where the best epoch came later (benchmarks/early_stopping.py)
    selection: str = "val_loss"  # parity: the authors pick the best *test* rho (test_rho; on rank 0's shard: shard_rho)
    seed: int = 1112  # the first model's initialisation and video order (+ split)
    seeds: int = 1  # independent models per split (seed, seed + 1, ...), each scored on its own
    amp: bool = True  # used on CUDA only
    ensemble: int = 1  # models whose step scores are averaged into one (each seed's model)
    batch_videos: int = 1  # videos per forward pass (padded, masked); the loss stays a mean over videos
    augment: bool = False  # the augmented setting: the other benchmark's videos join every fitting set
    loss: str = "mse"  # parity: mean squared error; "pearson": 1 - correlation within each video (rank-like);
    # "shot_pearson": the same over the shots' mean scores, what SumMe's knapsack ranks (needs the shots)
    target: str = "gtscore"  # parity: the mean importance; "users": the loss against each annotator's own
    # labels at the steps (SumMe's binary summaries, TVSum's 1-5 scores), averaged: what the metrics compare with
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise LlmvsError(f"unknown training key(s): {', '.join(unknown)}")
        try:
            cfg = cls(**d)
        except TypeError as err:
            raise LlmvsError(str(err)) from None
        if min(cfg.epochs, cfg.accumulate, cfg.ensemble, cfg.seeds, cfg.batch_videos, cfg.metrics_every) < 1:
            raise LlmvsError("epochs, accumulate, ensemble, seeds, batch_videos and metrics_every must be >= 1")
        for key, value, allowed in (("loss", cfg.loss, LOSSES), ("selection", cfg.selection, SELECTIONS),
                                    ("aggregator", cfg.aggregator, AGGREGATORS), ("target", cfg.target, TARGETS)):
            if value not in allowed:
                raise LlmvsError(f"unknown {key} {value!r}: expected one of {', '.join(allowed)}")
        if cfg.patience is not None and (cfg.patience < 1 or cfg.selection != "val_loss"):
            raise LlmvsError(f"patience {cfg.patience} needs an integer >= 1 and selection val_loss "
                             f"(not {cfg.selection})")
        if cfg.target == "users" and cfg.batch_videos > 1:
            raise LlmvsError("target users trains one video a batch (batch_videos 1)")
        from llmvs.embeddings import check_feature_names

        check_feature_names(cfg.features)
        return cfg


def model_config(cfg: TrainConfig, input_dim: int) -> ModelConfig:
    """The aggregator's architecture from a run's training keys."""
    keys = {f.name for f in fields(ModelConfig)} - {"input_dim"}
    return ModelConfig(input_dim=input_dim, **{k: getattr(cfg, k) for k in keys})


def check_smooth_steps(value) -> float:
    """The evaluation key `smooth_steps`: a Gaussian sigma in steps, >= 0 (0 = no smoothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise LlmvsError(f"smooth_steps must be a number >= 0 (sigma in steps), not {value!r}")
    return float(value)
