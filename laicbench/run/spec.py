"""Run specifications: one run is (method + params, dataset, backbone, seed, k-factor and, for a
test-only dataset, the dataset whose train split the method learns on)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from laicbench.api.settings import AttackSpec
from laicbench.files import short_hash

# The two class protocols of ``--train-on SOURCE[:CLASSES]``: "all" (the default, VLM4Cluster's:
# learn on every class of the source, K = the source's, e.g. 1,000-way heads on ImageNet) and
# "subset" (learn on the source's images of the target's classes only, K = the target's)
ALL_CLASSES = "all"
SUBSET_CLASSES = "subset"
TRAIN_CLASSES = (ALL_CLASSES, SUBSET_CLASSES)


def train_protocol(train_on: str) -> tuple[str, str]:
    """(source dataset, class protocol) of a ``train_on`` value ``SOURCE:all`` or
    ``SOURCE:subset``. A value without a protocol is what records written before the protocol
    was named hold: it meant the subset then."""
    source, _, classes = train_on.partition(":")
    return source, classes or SUBSET_CLASSES


@dataclass(frozen=True)
class RunSpec:
    """One run: canonical method and dataset names, full method params, backbone, seed and the
    over-clustering factor (the method is asked for k_factor x K clusters) and `train_on`: None
    (the method learns on the dataset's own train split) or the dataset whose train split it
    learns on, with its class protocol (``imagenet:all``: all its classes, K = 1,000;
    ``imagenet:subset``: its images of this dataset's classes, K = this dataset's), and
    `attack`: None (clean images) or the attack that perturbed the dataset's test images before
    they were encoded (the adversarial track)."""

    method: str
    dataset: str
    backbone: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    k_factor: int = 1
    train_on: str | None = None
    attack: AttackSpec | None = None

    def __post_init__(self) -> None:
        if isinstance(self.attack, dict):  # the JSON form (records, Ray trial configs)
            object.__setattr__(self, "attack", AttackSpec.from_dict(self.attack))

    @property
    def source_dataset(self) -> str | None:
        """The dataset whose train split the method learns on, when not this one's."""
        return None if self.train_on is None else train_protocol(self.train_on)[0]

    @property
    def settings_dataset(self) -> str:
        """The dataset whose per-dataset settings (``Method.dataset_settings``) the run takes:
        the source when it learns on all of the source's classes (the method then trains as on
        the source itself: VLM4Cluster's source-side profiles), else its own."""
        if self.train_on is not None:
            source, classes = train_protocol(self.train_on)
            if classes == ALL_CLASSES:
                return source
        return self.dataset

    @property
    def datasets(self) -> list[str]:
        """The datasets the run reads: its own and, with `train_on`, the source."""
        return [self.dataset] + ([self.source_dataset] if self.train_on is not None else [])

    @property
    def params_hash(self) -> str:
        """Hash of the method parameters (distinguishes points of a hyperparameter sweep)."""
        return short_hash(self.params)

    @property
    def run_id(self) -> str:
        """A stable identifier, also the record's path below the results dir (without suffix).

        Names holding a path (a features file, a checkpoint file) are sanitised and given a
        hash of the full name, so that ``x/y.npz`` and ``x_y.npz`` stay apart. An
        over-clustering run ends in ``-k<factor>``, a run trained on another dataset in
        ``-on-<dataset>``, a run on attacked test images in ``-adv-<attack>-<hash of its
        parameters>``.
        """
        dataset, backbone = (path_part(s) for s in (self.dataset, self.backbone))
        over = f"-k{self.k_factor}" if self.k_factor != 1 else ""
        if self.train_on is not None:
            over += f"-on-{path_part(self.train_on)}"
        if self.attack is not None:
            over += f"-adv-{self.attack.name}-{short_hash(self.attack.to_dict(), 8)}"
        return f"{self.method}/{dataset}/{backbone}/seed{self.seed}-{self.params_hash}{over}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in records (``k_factor`` only when it is not 1, ``train_on`` and
        ``attack`` only when set, so that records of other runs are as before)."""
        out = {
            "method": self.method,
            "dataset": self.dataset,
            "backbone": self.backbone,
            "seed": self.seed,
            "params": self.params,
        }
        if self.k_factor != 1:
            out["k_factor"] = self.k_factor
        if self.train_on is not None:
            out["train_on"] = self.train_on
        if self.attack is not None:
            out["attack"] = self.attack.to_dict()
        return out


def path_part(name: str) -> str:
    """`name` as one path component, sanitised; a name holding a path (a features file, a
    checkpoint file) also gets a hash of it, since sanitising folds '/' into '_'."""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
    if "/" not in name and "\\" not in name:
        return plain
    # a path too long for one file name (255 bytes) keeps its end, the file's name; shorter
    # ones are kept whole, so that their records' paths stay what they were
    if len(plain) > MAX_PATH_PART:
        plain = plain[-MAX_PATH_PART:].lstrip("_.-")
    return f"{plain}-{short_hash(name, 8)}"


# with "-" and the hash, 255 bytes: the usual limit of one file name (longer ones never worked)
MAX_PATH_PART = 246


_SEED_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
MAX_SEED = 2**32 - 1  # the largest seed NumPy's legacy global generator accepts
MAX_SEEDS = 10_000  # more seeds than this in one sweep is a typo, not an experiment


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-2"``, ``"0,3,5"`` or ``"0-2,7"`` into sorted unique seeds (ValueError if bad)."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        match = _SEED_PART.match(part)
        if not match:
            raise ValueError(
                f"seeds {text!r}: {part.strip()!r} is not N or N-M (e.g. 0-2 or 0,1,5)"
            )
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"seeds {text!r}: range {lo}-{hi} is empty")
        if hi > MAX_SEED:
            raise ValueError(f"seeds {text!r}: {hi} is above the largest seed, {MAX_SEED}")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"seeds {text!r}: more than {MAX_SEEDS:,} seeds in one sweep")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)
