"""Datasets: one in-memory model (`model`) and readers/writers for each file format, plus frame extraction and
statistics. Importing this package does not import TensorFlow; only the TFRecord functions do, when called.

Readers skip malformed records and list them on `Dataset.issues`, or raise `DatasetFormatError` when
`strict=True` (see `issues`).
"""

from cpm_core.dataset.compare import dataset_differences, instance_differences
from cpm_core.dataset.formats import FORMATS, guess_format, read_dataset, write_dataset
from cpm_core.dataset.issues import DatasetFormatError, FormatIssue
from cpm_core.dataset.model import ABSENT, OCCLUDED, VISIBLE, Dataset, Instance, Sample, bbox_from_keypoints

__all__ = [
    "ABSENT", "FORMATS", "OCCLUDED", "VISIBLE", "Dataset", "DatasetFormatError", "FormatIssue", "Instance",
    "Sample", "bbox_from_keypoints", "dataset_differences", "guess_format", "instance_differences",
    "read_dataset", "write_dataset",
]
