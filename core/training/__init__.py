"""Runs: one training run, run folders, background jobs and their progress, preflight, evaluation
on the mini benchmark and its result tables."""
