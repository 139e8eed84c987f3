"""Associative memory for binary masks: patterns, Hopfield learning rules, memories, recall, capacity."""
from hopfield_masks.capacity import (
    CapacityConfig,
    CapacityPoint,
    CapacityResult,
    default_kwta,
    flip_bits,
    generate_patterns,
    mean_correlation,
    measure_capacity,
    theory_loads,
)
from hopfield_masks.dense import DenseMemory
from hopfield_masks.factory import (
    DEFAULT_MAX_BYTES,
    default_backend,
    estimate_nbytes,
    load_memory,
    make_memory,
)
from hopfield_masks.files import FORMAT_VERSION, load_store, save_store
from hopfield_masks.functional import RecallResult
from hopfield_masks.implicit import ImplicitMemory
from hopfield_masks.memory import HopfieldMemory
from hopfield_masks.modern import ModernMemory
from hopfield_masks.patterns import (
    MaskLayout,
    masks_to_patterns,
    pack_bits,
    patterns_to_masks,
    unpack_bits,
)
from hopfield_masks.plot import plot_capacity
from hopfield_masks.rules import (
    RULES,
    Covariance,
    Hebbian,
    LearningRule,
    Modern,
    PseudoInverse,
    Storkey,
    StorkeyReference,
)

__all__ = [
    "CapacityConfig",
    "CapacityPoint",
    "CapacityResult",
    "DEFAULT_MAX_BYTES",
    "Covariance",
    "DenseMemory",
    "FORMAT_VERSION",
    "Hebbian",
    "HopfieldMemory",
    "ImplicitMemory",
    "LearningRule",
    "MaskLayout",
    "Modern",
    "ModernMemory",
    "PseudoInverse",
    "RULES",
    "RecallResult",
    "Storkey",
    "StorkeyReference",
    "default_backend",
    "default_kwta",
    "estimate_nbytes",
    "flip_bits",
    "generate_patterns",
    "load_memory",
    "load_store",
    "make_memory",
    "masks_to_patterns",
    "mean_correlation",
    "measure_capacity",
    "pack_bits",
    "patterns_to_masks",
    "plot_capacity",
    "save_store",
    "theory_loads",
    "unpack_bits",
]
