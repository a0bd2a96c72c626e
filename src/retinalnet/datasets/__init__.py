"""Data sets: the Kermany OCT2017 folder layout, a synthetic OCT generator, summaries,
audits and patient-aware splits."""

from retinalnet._core.classes import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from retinalnet._core.classes import KERMANY_CLASSES as KERMANY_CLASSES
from retinalnet._core.classes import KERMANY_SPLITS as KERMANY_SPLITS
from retinalnet._core.images import ImageNotFoundError as ImageNotFoundError
from retinalnet._core.images import UnreadableImageError as UnreadableImageError
from retinalnet._core.images import load_image as load_image
from retinalnet.datasets._audit import audit as audit
from retinalnet.datasets._audit_report import AuditReport as AuditReport
from retinalnet.datasets._audit_report import DuplicateGroup as DuplicateGroup
from retinalnet.datasets._explore import ImageCounts as ImageCounts
from retinalnet.datasets._explore import SizeStats as SizeStats
from retinalnet.datasets._explore import count_images as count_images
from retinalnet.datasets._explore import image_size_stats as image_size_stats
from retinalnet.datasets._files import find_images as find_images
from retinalnet.datasets._files import is_image_file as is_image_file
from retinalnet.datasets._files import patient_id_from_name as patient_id_from_name
from retinalnet.datasets._kermany import KermanyOCT as KermanyOCT
from retinalnet.datasets._manifest import MANIFEST_COLUMNS as MANIFEST_COLUMNS
from retinalnet.datasets._manifest import ManifestRow as ManifestRow
from retinalnet.datasets._manifest import read_manifest as read_manifest
from retinalnet.datasets._manifest import write_manifest as write_manifest
from retinalnet.datasets._render import render_bscan as render_bscan
from retinalnet.datasets._splits import patient_split as patient_split
from retinalnet.datasets._synthetic import SyntheticOCT as SyntheticOCT
from retinalnet.datasets._synthetic import make_synthetic_kermany as make_synthetic_kermany

__all__ = [
    "IMAGE_EXTENSIONS",
    "KERMANY_CLASSES",
    "KERMANY_SPLITS",
    "MANIFEST_COLUMNS",
    "AuditReport",
    "DuplicateGroup",
    "ImageCounts",
    "ImageNotFoundError",
    "KermanyOCT",
    "ManifestRow",
    "SizeStats",
    "SyntheticOCT",
    "UnreadableImageError",
    "audit",
    "count_images",
    "find_images",
    "image_size_stats",
    "is_image_file",
    "load_image",
    "make_synthetic_kermany",
    "patient_id_from_name",
    "patient_split",
    "read_manifest",
    "render_bscan",
    "write_manifest",
]
