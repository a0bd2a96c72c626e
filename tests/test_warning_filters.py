"""filter_in_this_thread: library calls in threads leave the process's warning filters in
effect as they were (``warnings.catch_warnings`` interleaved in threads leaks the library's
filters), change them for their own thread only (a host's other threads keep their
warnings), and do not change the filters' version (which shows again every warning Python
shows once per place: the user's own, after every image read)."""

from __future__ import annotations

import ast
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from retinalnet._core.images import image_size, load_image
from retinalnet._core.loaders import make_loader
from retinalnet.models import Classifier
from retinalnet.predictor import Predictor
from retinalnet.transforms import Preprocessing

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "retinalnet"

# The command line's own process sets its filters for the command; no library call runs it.
OWN_PROCESS = {"cli/__init__.py"}

CALLS = 800
"""Calls on 4 threads per test: per-call ``catch_warnings`` leaked in every run of 800 (in
about half the runs of 160)."""


@pytest.fixture
def often_switching() -> Iterator[None]:
    """Threads switched every microsecond, not every 5 ms: interleavings show at once."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.fixture
def scans(tmp_path: Path) -> list[Path]:
    paths = []
    for index in range(8):
        path = tmp_path / f"scan-{index}.png"
        Image.new("L", (64, 60), color=index * 20).save(path)
        paths.append(path)
    return paths


class _WarningImages(Dataset[tuple[Image.Image, int]]):
    """PIL images, each read with a warning (as a small scan's)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        warnings.warn("a small scan", UserWarning, stacklevel=2)
        return Image.new("RGB", (32, 32)), index % 2


def _in_threads(call: Callable[[int], Any], calls: int = CALLS) -> list[Any]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(call, range(calls)))


def _is_ours(entry: Any) -> bool:
    """One of the entries of filter_in_this_thread: one per level of a thread's blocks,
    action and category, left in front of the filters and inert outside the blocks."""
    return "retinalnet" in repr(entry[1])


def _callers(filters: list[Any]) -> list[Any]:
    return [entry for entry in filters if not _is_ours(entry)]


def _assert_inert(filters: list[Any]) -> None:
    """The library's entries match nothing outside its blocks, and are not one per call
    (one per level of a thread's blocks, action and category: the rules are in the
    threads)."""
    ours = [entry[1] for entry in filters if _is_ours(entry)]
    kinds = {(matcher.level, matcher.action, matcher.category) for matcher in ours}
    assert len(kinds) == len(ours), ours
    assert not [matcher for matcher in ours if matcher.match("any text")]


def _filters_unchanged(call: Callable[[int], Any], calls: int = CALLS) -> None:
    with warnings.catch_warnings():  # the test's own baseline, restored for pytest
        warnings.resetwarnings()
        warnings.simplefilter("default")
        before = list(warnings.filters)
        _in_threads(call, calls)
        left = [entry for entry in _callers(warnings.filters) if entry not in before]
        assert _callers(warnings.filters) == before, f"filters left installed: {left}"
        _assert_inert(warnings.filters)


@pytest.mark.usefixtures("often_switching")
def test_images_opened_in_threads_leave_the_filters_as_they_were(scans: list[Path]) -> None:
    def call(index: int) -> tuple[int, int]:
        path = scans[index % len(scans)]
        load_image(path)
        return image_size(path)

    _filters_unchanged(call)


@pytest.mark.usefixtures("often_switching")
def test_loaders_made_in_threads_leave_the_filters_as_they_were() -> None:
    data = _WarningImages()

    def call(index: int) -> int:
        return len(make_loader(data, batch_size=2, shuffle=False, transform=lambda i: 0))

    _filters_unchanged(call, 10 * CALLS)  # a quick call, mostly outside its filters


@pytest.mark.usefixtures("often_switching")
def test_predictions_in_threads_leave_the_filters_as_they_were(scans: list[Path]) -> None:
    torch.manual_seed(0)
    predictors = []
    for _ in range(4):  # a model serves one call at a time: four of them, for four threads
        network = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2), nn.LogSoftmax(1))
        model = Classifier(network, classes=("A", "B"), preprocessing=Preprocessing(size=32))
        predictors.append(Predictor(model, device="cpu", precision="fp32"))

    def call(index: int) -> str:
        prediction = predictors[index % 4].topk(scans[index % len(scans)], k=1)
        return prediction.label

    _filters_unchanged(call)


@pytest.mark.usefixtures("often_switching")
def test_the_users_warnings_stay_warnings_after_library_calls_in_threads(
    scans: list[Path],
) -> None:
    data = _WarningImages()

    def call(index: int) -> object:
        if index % 2:
            return load_image(scans[index % len(scans)])
        return make_loader(data, batch_size=2, shuffle=False, transform=lambda i: 0)

    said = ["the user's own warning", "a bomb the user's code warns of"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        _in_threads(call, 5 * CALLS)
        warnings.warn(said[0], UserWarning, stacklevel=1)
        warnings.warn(said[1], Image.DecompressionBombWarning, stacklevel=1)  # not an error
    assert [str(w.message) for w in seen] == said


def test_blocks_nest_each_restoring_the_filters_it_found() -> None:
    from retinalnet._core.warning_filters import filter_in_this_thread  # here: the threads'
    # tests above also run on a retinalnet without it, to show they fail there

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        before = _callers(warnings.filters)
        with filter_in_this_thread("ignore"):
            # the inner block's filter comes first
            with filter_in_this_thread("error", UserWarning), pytest.raises(UserWarning):
                warnings.warn("an error here", UserWarning, stacklevel=1)
            warnings.warn("ignored: the outer block is in force again", UserWarning, stacklevel=1)
        warnings.warn("shown: no block is", UserWarning, stacklevel=1)
        assert _callers(warnings.filters) == before
        _assert_inert(warnings.filters)
    assert [str(w.message) for w in seen] == ["shown: no block is"]


def test_a_block_changes_the_filters_of_its_own_thread_only() -> None:
    """While a library call ignored warnings (a prediction's look at a big first scan, for
    seconds), a host's other threads lost theirs: 95 of 181 in an audit."""
    from retinalnet._core.warning_filters import filter_in_this_thread

    inside, done = threading.Event(), threading.Event()
    others: list[str] = []

    def host_thread() -> None:
        inside.wait(30)
        warnings.warn("the host's own warning", UserWarning, stacklevel=1)
        try:
            warnings.warn("the host's bomb", Image.DecompressionBombWarning, stacklevel=1)
            others.append("a warning, as the host's filters say")
        except Image.DecompressionBombWarning:
            others.append("made an error by the library's filter")
        done.set()

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        thread = threading.Thread(target=host_thread)
        thread.start()
        with (
            filter_in_this_thread("ignore"),
            filter_in_this_thread("error", Image.DecompressionBombWarning),
        ):
            inside.set()
            warnings.warn("the library's own, ignored", UserWarning, stacklevel=1)
            with pytest.raises(Image.DecompressionBombWarning):
                warnings.warn("a library's bomb", Image.DecompressionBombWarning, stacklevel=1)
            assert done.wait(30)
        thread.join(30)
    assert [str(w.message) for w in seen] == ["the host's own warning", "the host's bomb"]
    assert others == ["a warning, as the host's filters say"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_process_forked_during_another_threads_block_has_the_filters_of_before() -> None:
    from retinalnet._core.warning_filters import filter_in_this_thread

    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with filter_in_this_thread("ignore"):
            inside.set()
            release.wait(30)

    with warnings.catch_warnings():
        before = list(warnings.filters)
        thread = threading.Thread(target=hold)
        thread.start()
        inside.wait(30)
        # fork() in a process with threads (Python 3.12 warns of it): as asked here
        with filter_in_this_thread("ignore", DeprecationWarning):
            pid = os.fork()
        if pid == 0:  # the child: the other thread's block gone, blocks of its own work
            ours = [entry for entry in warnings.filters if _is_ours(entry)]
            ok = _callers(warnings.filters) == _callers(before)
            ok = ok and not [entry for entry in ours if entry[1].match("any text")]
            shown: list[str] = []
            warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
            warnings.simplefilter("always")
            warnings.warn("shown", UserWarning, stacklevel=1)  # the other thread's block: gone
            with filter_in_this_thread("ignore"):
                warnings.warn("ignored", UserWarning, stacklevel=1)
            os._exit(0 if ok and shown == ["shown"] else 1)
        release.set()
        thread.join()
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked process waited forever for the lock of a thread it lacks")
        assert os.waitstatus_to_exitcode(done[1]) == 0, "the child kept another thread's filter"


_CHANGES_FILTERS = {"catch_warnings", "simplefilter", "filterwarnings", "resetwarnings"}


def _filter_changes(path: Path) -> Iterator[int]:
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _CHANGES_FILTERS
            and isinstance(node.value, ast.Name)
            and node.value.id == "warnings"
        ):
            yield node.lineno


def test_no_library_module_changes_the_filters_of_every_thread() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "warning_filters.py"
        and path.relative_to(PACKAGE).as_posix() not in OWN_PROCESS
        for line in _filter_changes(path)
    ]
    assert not found, (
        f"the process's warning filters changed at {found}: use "
        "retinalnet._core.warning_filters.filter_in_this_thread(), which changes them for "
        "the calling thread only"
    )


def test_a_data_set_that_opens_images_in_threads_of_its_own_does_not_hang_the_loader(
    tmp_path: Path,
) -> None:
    # make_loader looked at the first sample holding the lock; a data set whose __getitem__
    # opened its images in a thread pool and waited for them waited forever (the pool's
    # threads waited for the lock)
    import subprocess

    Image.new("L", (64, 64), 90).save(tmp_path / "scan.png")
    script = f"""
import sys, torch
from concurrent.futures import ThreadPoolExecutor
from retinalnet._core.images import load_image
from retinalnet._core.loaders import make_loader
from retinalnet.transforms import Preprocessing
pool = ThreadPoolExecutor(2)
class Frames(torch.utils.data.Dataset):
    def __len__(self):
        return 2
    def __getitem__(self, index):
        return pool.submit(load_image, {str(tmp_path / "scan.png")!r}).result(), 0
loader = make_loader(Frames(), batch_size=1, num_workers=0, shuffle=False,
                     transform=Preprocessing(size=32).eval_transform())
print(len(list(loader)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout.strip()) == (0, "2"), done.stderr


def test_warnings_ignored_leaves_the_callers_entries_as_they_are() -> None:
    from retinalnet._core.warning_filters import warnings_ignored

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the caller's own, equal in effect to the block's
        before = list(warnings.filters)
        with warnings_ignored():
            assert _callers(warnings.filters) == before
            assert _is_ours(warnings.filters[0])  # in front of the caller's
        assert _callers(warnings.filters) == before
        assert _callers(warnings.filters)[0] is before[0]


def test_an_error_filter_applies_to_a_warning_already_shown_at_the_same_place() -> None:
    """A warning shown once at a place is skipped there before the filters are read, unless
    they changed: a bomb warning the host's own code had shown made the library's "error"
    entry unreachable, and the next bomb was loaded."""
    from retinalnet._core.warning_filters import filter_in_this_thread

    def warn() -> None:
        warnings.warn("a bomb", Image.DecompressionBombWarning, stacklevel=1)  # one place

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        warn()  # shown once: the place is in the module's registry
        with (
            filter_in_this_thread("error", Image.DecompressionBombWarning),
            pytest.raises(Image.DecompressionBombWarning),
        ):
            warn()


def test_an_entry_put_back_by_another_threads_catch_warnings_matches_nothing() -> None:
    """A catch_warnings() in another thread that spans a block's end puts back its copy of
    the filters, the block's entry in it: the calling thread lost every warning for good."""
    from retinalnet._core.warning_filters import warnings_ignored

    inside, saved, ended = threading.Event(), threading.Event(), threading.Event()

    def library_call() -> None:
        with warnings_ignored():
            inside.set()
            saved.wait(30)
        ended.set()

    def other_thread() -> None:
        inside.wait(30)
        with warnings.catch_warnings():  # saves the list with the block's entry in it
            saved.set()
            ended.wait(30)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=library_call), threading.Thread(target=other_thread)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        left = [entry for entry in warnings.filters if _is_ours(entry)]
        assert left, "the other thread's catch_warnings put the entry back (the case tested)"
        matcher = left[0][1]
        assert not matcher.match("any text")  # in its own thread too: its block has ended
        warnings.warn("shown", UserWarning, stacklevel=1)
        with warnings_ignored():  # the next block puts the entries in front, once each
            warnings.warn("ignored", UserWarning, stacklevel=1)
        _assert_inert(warnings.filters)
        assert len({id(entry) for entry in warnings.filters if _is_ours(entry)}) == len(
            [entry for entry in warnings.filters if _is_ours(entry)]
        )
    assert [str(w.message) for w in seen] == ["shown"]


def _users_step() -> None:
    warnings.warn("the user's own, shown once at this place", UserWarning, stacklevel=1)


def test_a_warning_python_shows_once_stays_shown_once_across_blocks() -> None:
    """Each block told ``warnings`` its filters changed, which empties every module's
    registry of the warnings already shown: a user's warning in a loop that read images was
    shown at every iteration (4 times in 5 in an audit), where Python shows it once."""
    from retinalnet._core.warning_filters import filter_in_this_thread, warnings_ignored

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        for _ in range(5):
            _users_step()
            with warnings_ignored(), filter_in_this_thread("ignore", UserWarning, "not this"):
                pass
    assert [str(w.message) for w in seen] == ["the user's own, shown once at this place"]


def _library_step() -> None:
    warnings.warn("the library's, once per place", UserWarning, stacklevel=1)


def test_a_warning_ignored_by_a_block_is_shown_at_its_place_after_it() -> None:
    """The filters' version no longer changes per block, so nothing a block decides may be
    remembered for later: an ignored warning is not recorded as shown (it shows once the
    block has ended, once)."""
    from retinalnet._core.warning_filters import warnings_ignored

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        with warnings_ignored():
            _library_step()
        _library_step()
        _library_step()
    assert [str(w.message) for w in seen] == ["the library's, once per place"]


def test_a_block_wins_over_filters_the_caller_put_in_front_of_its_entries() -> None:
    """The entries stay in the filters between blocks: a ``-W error`` (or a reset) made
    after the first block goes in front of them, and the next block puts them back first."""
    from retinalnet._core.warning_filters import warnings_ignored

    with warnings.catch_warnings():
        with warnings_ignored():
            pass
        warnings.simplefilter("error")
        with warnings_ignored():
            warnings.warn("ignored in the block", UserWarning, stacklevel=1)
        with pytest.raises(UserWarning):
            warnings.warn("an error outside it, as the caller asked", UserWarning, stacklevel=1)
        warnings.resetwarnings()
        warnings.simplefilter("error")
        with warnings_ignored():
            warnings.warn("ignored in the block", UserWarning, stacklevel=1)


def test_two_threads_nesting_blocks_in_opposite_orders_each_get_their_innermost() -> None:
    """An entry stands for one level of a thread's blocks, so each thread's innermost block
    wins, whatever the other threads' blocks are at the same time."""
    from retinalnet._core.warning_filters import filter_in_this_thread, warnings_ignored

    both_inside = threading.Barrier(2, timeout=30)
    results: dict[str, str] = {}

    def warn(name: str) -> None:
        both_inside.wait()
        try:
            warnings.warn(name, UserWarning, stacklevel=1)
            results[name] = "ignored"
        except UserWarning:
            results[name] = "error"
        both_inside.wait()

    def error_inside() -> None:
        with warnings_ignored(), filter_in_this_thread("error", UserWarning):
            warn("error inside")

    def ignore_inside() -> None:
        with filter_in_this_thread("error", UserWarning), warnings_ignored():
            warn("ignore inside")

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=error_inside), threading.Thread(target=ignore_inside)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == {"error inside": "error", "ignore inside": "ignored"}
    assert seen == []


def test_blocks_ended_out_of_order_leave_the_other_in_force() -> None:
    """Generators suspended inside blocks can end them in any order: the block still open
    keeps applying, and the ended one stops."""
    from retinalnet._core.warning_filters import filter_in_this_thread

    def held(block: Any) -> Iterator[None]:
        with block:
            yield

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        outer = held(filter_in_this_thread("ignore", UserWarning))
        next(outer)
        inner = held(filter_in_this_thread("error", RuntimeWarning))
        next(inner)
        outer.close()  # the outer block ends first
        with pytest.raises(RuntimeWarning):
            warnings.warn("still an error", RuntimeWarning, stacklevel=1)
        warnings.warn("shown: its block has ended", UserWarning, stacklevel=1)
        inner.close()
        warnings.warn("shown: no block is left", RuntimeWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == [
        "shown: its block has ended",
        "shown: no block is left",
    ]
