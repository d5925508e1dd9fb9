"""Datasets: the registry behind ``--dataset``, loaders, and batch-wise scaling."""

from .dataset import Dataset
from .sources import DATASETS, DatasetSource, load_dataset, load_npz

__all__ = ["DATASETS", "Dataset", "DatasetSource", "load_dataset", "load_npz"]
