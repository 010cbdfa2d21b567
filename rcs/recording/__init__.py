"""Recording demonstrations into LeRobotDatasets that survive a crash (docs/record.md).

Light at import: :mod:`rcs.recording.features` is numpy only; the writer imports lerobot when it first writes.
"""

from rcs.recording.features import FeatureLayout, frame_features, observation_to_features

__all__ = ["FeatureLayout", "frame_features", "observation_to_features"]
