"""PyTorch models from the four seed chapters, their features, datasets and training.

Imports neither ``bot`` nor ``strategies``: a model knows tensors, not exchanges.
"""
