"""lab6: EViT token pruning on timm's Vision Transformers, for a teaching workbook."""

from lab6.evit import EViTOutput, PruneRecord, apply_evit, get_keep_rate, set_keep_rate
from lab6.i18n import ImageError, Lab6Error, ModelError, ScheduleError, WeightsError
from lab6.index import FUSED, get_real_idx, patch_owner
from lab6.schedule import LAB_SCHEDULE, num_kept, parse_keep_rate, token_counts

__all__ = [
    "EViTOutput",
    "PruneRecord",
    "apply_evit",
    "get_keep_rate",
    "set_keep_rate",
    "Lab6Error",
    "ScheduleError",
    "ImageError",
    "WeightsError",
    "ModelError",
    "FUSED",
    "get_real_idx",
    "patch_owner",
    "LAB_SCHEDULE",
    "num_kept",
    "parse_keep_rate",
    "token_counts",
]
