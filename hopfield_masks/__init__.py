"""Associative memory for binary masks: patterns, Hopfield learning rules, memories, recall, capacity."""
from hopfield_masks.backends import BACKENDS, MEMORY_CLASSES
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
    make_rule,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_BYTES",
    "FORMAT_VERSION",
    "MEMORY_CLASSES",
    "RULES",
    "CapacityConfig",
    "CapacityPoint",
    "CapacityResult",
    "Covariance",
    "DenseMemory",
    "Hebbian",
    "HopfieldMemory",
    "ImplicitMemory",
    "LearningRule",
    "MaskLayout",
    "Modern",
    "ModernMemory",
    "PseudoInverse",
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
    "make_rule",
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
