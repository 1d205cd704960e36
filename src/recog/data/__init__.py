"""Datasets: class-per-folder trees and CSV manifests, splits, checks, augmentation."""

from recog.data.dataset import Dataset, Sample, load_dataset

__all__ = ["Dataset", "Sample", "load_dataset"]
