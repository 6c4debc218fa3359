"""Accuracy and speed measurements: the WIDER FACE protocol, agreement between models, benchmarks.

Evaluation needs the ``eval`` extra (scipy for the ground truth ``.mat`` files, matplotlib for plots).
"""
