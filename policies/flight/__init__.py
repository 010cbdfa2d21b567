"""Learned flight: the hover policy MLP, its checkpoints, its PPO trainer and its serving loader."""
