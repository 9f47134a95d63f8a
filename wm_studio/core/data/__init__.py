"""Random rollouts on disk and streaming datasets over them."""
from wm_studio.core.data.dataset import (FrameDataset, SequenceBatch, SequenceDataset, rollout_files,
                                         split_holdout)

__all__ = ["FrameDataset", "SequenceBatch", "SequenceDataset", "rollout_files", "split_holdout"]
