"""The Kermany OCT2017 folder layout as a torchvision-style data set.

Why this module is long: it is one class, :class:`KermanyOCT`, with its two constructors
(the folders, a manifest) and the one-line errors each wrong layout gets; split, the errors
would be far from the walk that finds them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch.utils.data
from PIL import Image

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import (
    IMAGE_EXTENSIONS,
    KERMANY_CLASSES,
    KERMANY_SPLITS,
    kermany_subset,
)
from retinalnet._core.folders import nonempty_path
from retinalnet._core.images import UnreadableImageError, load_image
from retinalnet._core.transform_args import check_transforms
from retinalnet.datasets._files import (
    LAYOUT_FOLDER,
    LAYOUT_HINT,
    check_root,
    class_named_in,
    foreign_class_folder,
    iter_image_files,
    list_class_folders,
    patient_id_from_name,
)
from retinalnet.datasets._files_not_read import warn_of_files_not_read
from retinalnet.datasets._linked_files import LinkedFiles
from retinalnet.datasets._manifest import ManifestRow, read_manifest
from retinalnet.datasets._manifest_files import (
    check_no_file_twice_under,
    leave_out_rows_never_read,
    log_rows_outside_root,
    refuse_rows_all_left_out,
    rows_with_files,
    warn_of_mislabelled_rows,
)
from retinalnet.datasets._misnamed import warn_misnamed
from retinalnet.datasets._root_layout import describe_root, unknown_split_message
from retinalnet.datasets._system_folders import system_folders_said_once

__all__ = ["KermanyOCT"]

ON_ERROR_POLICIES = ("raise", "skip")


class KermanyOCT(torch.utils.data.Dataset[tuple[Any, Any]]):
    """One split of the Kermany OCT2017 data set, laid out as on disk.

    Reads ``root/split/{CNV,DME,DRUSEN,NORMAL}/*.jpeg`` like torchvision's
    :class:`~torchvision.datasets.ImageFolder`, with two differences that matter for OCT:
    the class order is fixed
    (``CNV=0, DME=1, DRUSEN=2, NORMAL=3``, whichever class folders exist), and every sample
    knows the patient it came from.

    Parameters
    ----------
    root
        The folder holding ``train/``, ``val/`` and ``test/`` (``OCT2017`` in the Kaggle
        download, ``CellData/OCT`` in the Mendeley one, which has no ``val``).
    split
        ``"train"``, ``"val"`` or ``"test"``.
    classes
        The classes a study keeps, e.g. ``["CNV", "NORMAL"]`` for CNV against normal scans:
        the other class folders are not read, and the targets are ``0 .. len(classes) - 1``
        in the fixed Kermany order (``CNV`` before ``NORMAL`` whatever order they are given
        in). Train a model for them with ``create_model(arch, classes=train.classes)``
        (``retinalnet train --classes CNV NORMAL``). Default: all four.

        .. versionadded:: 0.2
    transform
        Applied to each PIL image, for loops of your own (e.g.
        ``Preprocessing().train_transform()``). Leave it out for the Trainer,
        :func:`~retinalnet.training.evaluate`, :func:`~retinalnet.training.calibrate` and
        the Predictor: they prepare each image with the model's own preprocessing, and warn
        when data they score has a transform other than it.
    target_transform
        Applied to each class index.
    loader
        Reads one file; the default decodes it fully and names the file if that fails. The
        Trainer, :func:`~retinalnet.training.evaluate` and the feature cache read the files
        of a data set with the default loader and no ``transform`` through the model's own
        :meth:`~retinalnet.transforms.Preprocessing.load` instead (see :meth:`with_loader`),
        so its decoding scale is the one the model was trained with. A loader of your own
        is used as given; one that is another preprocessing's ``load``, decoding otherwise
        than the model's, is warned of.
    on_error
        What to do when an image cannot be read: ``"raise"`` (the default) raises
        :class:`~retinalnet.datasets.UnreadableImageError` naming the file, also from a
        DataLoader worker; ``"skip"`` warns (naming the file) and returns the next readable
        sample instead, so a training batch keeps its size and an epoch its length. Each
        unreadable file is decoded and warned of once per data set (once per DataLoader
        worker process): later reads pass over it without opening it. What
        computes numbers on the data set never takes that substitute:
        :func:`~retinalnet.training.evaluate`, :func:`~retinalnet.training.calibrate`, the
        Trainer's validation data and :func:`~retinalnet.training.build_feature_cache`
        decode each image once first and leave the unreadable ones out, with a logged
        warning naming them (a DataLoader or a ``Subset`` over such a data set is refused
        there, since its images cannot be left out).

        .. versionadded:: 0.2

    Attributes
    ----------
    classes : list of str
        ``["CNV", "DME", "DRUSEN", "NORMAL"]``, or the subset given as ``classes``.
    class_to_idx : dict of str to int
        Class name to index.
    samples : list of (str, int)
        Image path and class index, sorted by class, then path.
    targets : list of int
        The class index of each sample.
    patient_ids : list of str or None
        The patient id parsed from each file name (``CNV-1016042-1.jpeg`` -> ``"1016042"``).

    Raises
    ------
    FileNotFoundError
        If ``root`` or the split folder does not exist. The message names a folder of the
        split under another name (``valid/``, ``Train/``: rename it) or, when ``root`` holds
        no split folder, the folder below it that does (Kaggle's ``'OCT2017 '``, its name
        ending in a space: pass it as ``root``).
    TypeError
        If ``classes`` is one string.
    ValueError
        If ``split`` is unknown (``"valid"`` is refused naming ``"val"``), ``classes`` names
        a class that is not a Kermany class (or one twice, or fewer than two), a class folder
        is not a Kermany class, a class folder holds a subfolder named like another class
        (``train/CNV/DME/``: its images would be labelled CNV), a symbolic link leads into
        another split's folder of ``root`` (``train/CNV/more -> test/CNV``: test images
        trained on), or the split holds no images.

    Warns
    -----
    UserWarning
        Once per split, with a count and an example, when image file names start with
        another class than their folder (``train/CNV/DME-123-1.jpeg``): each such scan is
        mislabelled or misfiled. It is read with its folder's label.

    Notes
    -----
    Class folders are read recursively (``CNV/batch2/*.jpeg`` is CNV), except hidden
    folders. Symbolic links are followed by their real paths, so each image is read once:
    a link to a folder or image the split reads anyway (or that leads back into itself) is
    skipped with a warning; one into another split's folder is refused; one elsewhere (data
    on another disk) is read.
    Indexing is one :func:`os.scandir` walk per class folder: no file is opened or stat-ed
    (84,000 files index in well under a second, see ``benchmarks/``).
    Non-image files (``.DS_Store``, ``Thumbs.db``, hidden files) are ignored. The data set
    is by Kermany, Zhang and Goldbaum (Mendeley Data, doi:10.17632/rscbjbr9sj, CC BY 4.0);
    cite Kermany et al., *Cell* 172(5):1122-1131, 2018.

    Examples
    --------
    >>> from retinalnet.datasets import KermanyOCT
    >>> train = KermanyOCT("OCT2017", "train")  # doctest: +SKIP
    >>> train.classes  # doctest: +SKIP
    ['CNV', 'DME', 'DRUSEN', 'NORMAL']
    >>> KermanyOCT("OCT2017", "train", classes=["NORMAL", "CNV"]).classes  # doctest: +SKIP
    ['CNV', 'NORMAL']
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        classes: Sequence[str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[str], Any] = load_image,
        on_error: str = "raise",
    ) -> None:
        if split not in KERMANY_SPLITS:
            raise ValueError(unknown_split_message(split))
        self.root = nonempty_path(root, name="root", what=LAYOUT_FOLDER).expanduser()
        self.split = split
        self.split_dir = self.root / split
        self._configure(classes, transform, target_transform, loader, on_error)
        self._set_samples(self._find_samples())

    def _configure(
        self,
        classes: Sequence[str] | None,
        transform: Callable[[Image.Image], Any] | None,
        target_transform: Callable[[int], Any] | None,
        loader: Callable[[str], Any],
        on_error: str,
    ) -> None:
        if on_error not in ON_ERROR_POLICIES:
            raise ValueError(
                f"on_error must be one of {', '.join(map(repr, ON_ERROR_POLICIES))}, "
                f"got {on_error!r}"
            )
        check_transforms(transform, target_transform, owner=type(self).__name__)
        self.transform = transform
        self.target_transform = target_transform
        self.loader = loader
        self.on_error = on_error
        self.classes: list[str] = list(kermany_subset(classes))
        self.class_to_idx: dict[str, int] = {name: i for i, name in enumerate(self.classes)}

    def _set_samples(
        self, samples: list[tuple[str, int]], patient_ids: Sequence[str | None] | None = None
    ) -> None:
        self.samples: list[tuple[str, int]] = samples
        self.targets: list[int] = [target for _, target in samples]
        self.patient_ids: list[str | None] = (
            list(patient_ids)
            if patient_ids is not None
            else [patient_id_from_name(path) for path, _ in samples]
        )

    @classmethod
    def from_manifest(
        cls,
        manifest: str | os.PathLike[str],
        split: str = "train",
        *,
        root: str | os.PathLike[str] | None = None,
        classes: Sequence[str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[str], Any] = load_image,
        on_error: str = "raise",
    ) -> KermanyOCT:
        """One split of a manifest file written by :func:`~retinalnet.datasets.write_manifest`.

        The data set has the same shape as one read from folders (``classes``,
        ``class_to_idx``, ``samples``, ``targets``, ``patient_ids``), in the manifest's
        row order. A row's empty patient is the one in its file name, as for the folders.
        Each row of ``split`` is looked up once (one ``lstat``): a path with spaces around
        it, or in the other Unicode normal form than the file's name (a name copied from
        macOS), names that file; a broken symbolic link is kept, as the folders keep it.

        Parameters
        ----------
        manifest
            A ``.csv`` or ``.json`` manifest (columns ``path``, ``label``, ``split`` and,
            optionally, ``patient``).
        split
            Which rows to use: ``"train"``, ``"val"`` or ``"test"``.
        root
            The folder relative paths in the manifest start from (the data root the
            manifest was made from). Default: the manifest's own folder.
        classes
            The classes a study keeps (rows of other labels are left out); as for
            :class:`KermanyOCT`.
        transform, target_transform, loader, on_error
            As for :class:`KermanyOCT`.

        Raises
        ------
        FileNotFoundError
            If ``manifest`` does not exist, or rows of ``split`` name no file (counted in
            one line; with ``on_error="skip"`` only when they are more than half of them:
            relative paths start at ``root``, most likely the wrong root).
        ValueError
            If the manifest is malformed (not UTF-8, not valid CSV or JSON, a missing
            column, an unknown label or split), lists a file twice (also by a path relative
            to ``root`` and an absolute one, or through a linked folder), puts a patient in
            both ``train`` and ``val`` (see :func:`~retinalnet.datasets.read_manifest`), has
            no rows for ``split``, or only rows whose files lie in system folders (data
            restored into a ``.snapshot`` and listed by absolute paths: the message names the
            root to pass) or are hidden. Rows whose files lie outside ``root`` are read as
            listed, logged once (INFO); rows may name files of another split's folder (a
            pooled, patient-aware re-split: the manifest is the split).

        Warns
        -----
        UserWarning
            Once, counting them and naming one, when rows of ``split`` lie in a system
            folder (a NAS's ``@eaDir`` thumbnails, ``__MACOSX``, a recycle bin: see
            :func:`~retinalnet.datasets._system_folders.system_folder`) between ``root`` and
            the file, or name a hidden file (a macOS ``._`` AppleDouble file, which ``find``
            lists beside each scan copied from a Mac): they are left out, as the folder
            walks leave them out (a manifest written by an older ``retinalnet split`` or by
            ``find`` may list them; run ``retinalnet split`` again).
        UserWarning
            Once, counting them and naming one, with ``on_error="skip"``, when rows of
            ``split`` name no file (half of them or fewer): they are left out.
        UserWarning
            Once, counting them and naming one, when rows of ``split`` are labelled another
            class than their folder (one named like a class, in any case) or file name gives
            (``train/CNV/CNV-1-1.jpeg,DME``: a column sorted on its own in a spreadsheet),
            as the folders warn of misnamed files: they are read with the manifest's label.

        Examples
        --------
        >>> from retinalnet.datasets import KermanyOCT
        >>> val = KermanyOCT.from_manifest("split.csv", "val", root="OCT2017")  # doctest: +SKIP

        .. versionadded:: 0.2
        """
        if split not in KERMANY_SPLITS:
            raise ValueError(unknown_split_message(split))
        manifest_path = Path(manifest).expanduser()
        rows = read_manifest(manifest_path)
        base = (
            nonempty_path(root, name="root", what=LAYOUT_FOLDER).expanduser()
            if root is not None
            else manifest_path.parent
        )
        check_no_file_twice_under(rows, base, f"manifest {str(manifest_path)!r}")
        return cls._from_rows(
            rows,
            split,
            base,
            manifest_path,
            classes=classes,
            transform=transform,
            target_transform=target_transform,
            loader=loader,
            on_error=on_error,
        )

    @classmethod
    def _from_rows(
        cls,
        rows: Sequence[ManifestRow],
        split: str,
        root: Path,
        manifest: Path,
        *,
        classes: Sequence[str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[str], Any] = load_image,
        on_error: str = "raise",
    ) -> KermanyOCT:
        """One split of a manifest's ``rows``, read once for all its splits: what
        :meth:`from_manifest` builds after reading the file (``root``: the folder the rows'
        paths are under; ``manifest``: the file, for messages), so that splits built from
        one reading are of one version of the file, whatever rewrites it meanwhile.

        The check that no file is listed in two splits is the reader's, made once over all
        rows (:func:`~retinalnet.datasets._manifest_files.check_no_file_twice_under`), as
        :meth:`from_manifest` makes it.
        """
        if split not in KERMANY_SPLITS:
            raise ValueError(unknown_split_message(split))
        base, manifest_path = root, manifest
        self = cls.__new__(cls)
        self.root = base
        self.split = split
        self.split_dir = base / split
        self._configure(classes, transform, target_transform, loader, on_error)
        source = f"split {split!r} of manifest {str(manifest_path)!r}"
        of_split = [row for row in rows if row.split == split and row.label in self.class_to_idx]
        refuse_rows_all_left_out(of_split, base, source)
        chosen = leave_out_rows_never_read(of_split, base, source)
        if not chosen:
            found = sorted({row.split for row in rows})
            raise ValueError(
                f"manifest {str(manifest_path)!r} has no rows for split {split!r}"
                f"{self._of_classes()} (it has: {', '.join(found) or 'no rows'})"
            )
        chosen = rows_with_files(chosen, base, source, skip=self.on_error == "skip")
        log_rows_outside_root(chosen, base, source)
        warn_of_mislabelled_rows(chosen, base, source)
        self._set_samples(
            [(str(base / row.path), self.class_to_idx[row.label]) for row in chosen],
            [row.patient for row in chosen],
        )
        return self

    def _find_samples(self) -> list[tuple[str, int]]:
        check_root(self.root)
        if not self.split_dir.is_dir():
            self._raise_missing_split()
        samples: list[tuple[str, int]] = []
        misnamed: list[str] = []
        others: list[str] = []
        once = LinkedFiles.of_split(self.root, self.split)  # links: each image once
        with system_folders_said_once(self.split_dir):  # one line, not one per class folder
            folders = list_class_folders(self.split_dir)
            found = {
                name: sorted(iter_image_files(folder, others, once=once))
                for name, folder in folders.items()
                if name in self.class_to_idx  # not a class the study leaves out (classes=)
            }
        once.said()
        for name, paths in found.items():
            folder = folders[name]
            target = self.class_to_idx[name]
            for path in paths:
                inside = path[len(folder) + 1 :]
                if os.sep in inside:  # under a subfolder: named like another class?
                    parts = Path(inside).parts
                    foreign = foreign_class_folder(parts[:-1], name)
                    if foreign is not None:
                        self._raise_nested(name, Path(folder), parts, foreign, paths)
                    inside = parts[-1]
                if class_named_in(inside) not in (None, name):
                    misnamed.append(path)
            samples.extend((path, target) for path in paths)
        if misnamed:
            self._warn_misnamed(misnamed)
        warn_of_files_not_read(others, str(self.split_dir))
        if not samples:
            suffixes = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise ValueError(
                f"split {self.split!r} under {str(self.root)!r} holds no images"
                f"{self._of_classes()} ({suffixes}); {LAYOUT_HINT}"
            )
        samples.sort(key=lambda sample: sample[1])  # stable: keeps path order within a class
        return samples

    def _of_classes(self) -> str:
        """`` of CNV, NORMAL`` when the study keeps a subset of the classes, else ``""``."""
        if tuple(self.classes) == KERMANY_CLASSES:
            return ""
        return f" of {', '.join(self.classes)}"

    def _raise_nested(
        self, name: str, folder: Path, parts: tuple[str, ...], foreign: str, paths: list[str]
    ) -> None:
        subfolder = str(folder.joinpath(*parts[: parts.index(foreign) + 1]))
        count = sum(path.startswith(subfolder + os.sep) for path in paths)
        raise ValueError(
            f"{subfolder!r} is a {foreign.upper()} folder inside the {name} class folder: "
            f"its {count} image(s) would be labelled {name}; move them into "
            f"{str(self.split_dir / foreign.upper())!r} if they are {foreign.upper()} scans, "
            "or rename the subfolder (`retinalnet audit` lists every such file)"
        )

    def _warn_misnamed(self, misnamed: list[str]) -> None:
        example = Path(misnamed[0])
        relative = example.relative_to(self.root).as_posix()
        named, label = class_named_in(example.name), relative.split("/")[1]
        counted = f"{len(misnamed)} image(s) in split {self.split!r} under {str(self.root)!r}"
        warn_misnamed(counted, relative, str(named), label, door="folder")

    def _raise_missing_split(self) -> None:
        layout = describe_root(self.root)
        if set(layout.folders) & set(KERMANY_CLASSES):
            raise FileNotFoundError(
                f"{str(self.root)!r} holds class folders ({layout.found()}) but no "
                f"{self.split!r} folder: pass the folder above it as root; {LAYOUT_HINT}"
            )
        hint = layout.advice() or LAYOUT_HINT
        if hint == LAYOUT_HINT and self.split == "val" and "train" in layout.folders:
            hint = (  # the Mendeley download: train and test
                "a download without val/ gets a patient-aware one from train/: "
                "`retinalnet split ROOT --out split.csv`, then --manifest split.csv "
                "(KermanyOCT.from_manifest in Python)"
            )
        raise FileNotFoundError(
            f"no split folder {self.split!r} under {str(self.root)!r} "
            f"(found: {layout.found()}); {hint}"
        )

    def with_loader(self, loader: Callable[[str], Any]) -> KermanyOCT:
        """The same images, read by ``loader`` (a shallow copy; ``self`` is unchanged).

        A loader of your own is used as given by the Trainer,
        :func:`~retinalnet.training.evaluate` and the feature cache, in place of the model's
        own decoding, so prediction (which decodes as the model's preprocessing says) may
        see other pixels. Reduced JPEG decoding is not set here but on the model, which
        records it in its checkpoints for every later use:
        ``Preprocessing(reduced_decode=True)`` as its preprocessing (``retinalnet train
        --reduced-decode``). A data set given another preprocessing's ``load`` than the
        model's is warned of.

        Examples
        --------
        Faster decoding, for training and prediction alike:

        >>> from retinalnet.models import small_cnn
        >>> from retinalnet.transforms import Preprocessing
        >>> model = small_cnn(preprocessing=Preprocessing(reduced_decode=True))
        >>> model.preprocessing.reduced_decode
        True

        A loader of your own, say one reading scans exported in colour as grey:

        >>> from retinalnet.datasets import load_image
        >>> train = KermanyOCT("OCT2017", "train")  # doctest: +SKIP
        >>> grey = train.with_loader(lambda path: load_image(path).convert("L"))  # doctest: +SKIP

        .. versionadded:: 0.2
        """
        copied = copy.copy(self)
        copied.loader = loader
        copied.__dict__.pop("_unreadable", None)  # another loader may read what this could not
        return copied

    def without(self, paths: Iterable[str | os.PathLike[str]]) -> KermanyOCT:
        """The same data set without these files (a shallow copy; ``self`` is unchanged).

        For leaving out images known to be unreadable, as :func:`~retinalnet.training.evaluate`
        and ``retinalnet evaluate --on-error skip`` do, rather than letting
        ``on_error="skip"`` count a neighbour in their place.

        Examples
        --------
        >>> test = KermanyOCT("OCT2017", "test")  # doctest: +SKIP
        >>> readable = test.without(["OCT2017/test/CNV/CNV-53018-1.jpeg"])  # doctest: +SKIP

        .. versionadded:: 0.2
        """
        drop = {os.path.normpath(os.fspath(path)) for path in paths}
        kept = [
            (index, sample)
            for index, sample in enumerate(self.samples)
            if os.path.normpath(sample[0]) not in drop
        ]
        copied = copy.copy(self)
        copied._set_samples(
            [sample for _, sample in kept], [self.patient_ids[index] for index, _ in kept]
        )
        return copied

    def __len__(self) -> int:
        return len(self.samples)

    def _unreadable_paths(self) -> set[str]:
        """The files this data set's loader found unreadable (``on_error="skip"``), by path:
        kept while the loader stays the same, whatever ``samples`` becomes (filtered in
        place, as with torchvision's ``ImageFolder``); another loader starts afresh."""
        found = self.__dict__.get("_unreadable")  # absent from a data set pickled before
        if found is None or found[0] is not self.loader:
            found = self.__dict__["_unreadable"] = (self.loader, set())
        paths: set[str] = found[1]
        return paths

    def _load(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        if self.on_error == "raise":
            return self.loader(path), target
        # A run of K unreadable files would otherwise be decoded and warned of K(K+1)/2
        # times an epoch (each index walks forward over the rest of the run): each is
        # tried and warned of once, then passed over.
        unreadable = self._unreadable_paths()
        for offset in range(len(self.samples)):
            path, target = self.samples[(index + offset) % len(self.samples)]
            if path in unreadable:
                continue
            try:
                return self.loader(path), target
            except UnreadableImageError as error:
                unreadable.add(path)
                message = f"skipping unreadable image {path!r} ({error.reason})"
                warn_caller(message, RuntimeWarning)
        raise UnreadableImageError(
            self.samples[index][0],
            f"no readable image in the whole {self.split!r} split (on_error='skip')",
        )

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self._load(index)
        sample: Any = self.transform(image) if self.transform is not None else image
        label: Any = self.target_transform(target) if self.target_transform is not None else target
        return sample, label

    def __repr__(self) -> str:
        subset = "" if tuple(self.classes) == KERMANY_CLASSES else f", classes={self.classes}"
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}"
            f"{subset}, images={len(self)})"
        )
