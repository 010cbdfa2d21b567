"""Training of rcs policies on LeRobotDatasets (``rcs train``): data loading, the train loop, loss plots."""
