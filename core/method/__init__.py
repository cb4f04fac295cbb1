"""The GIST method: the masking rule, its ground truth, the losses (plain and cached) and their
multi-device plumbing, masked pairs explained in words."""
