"""The feature cache under torchrun: two CPU processes (gloo) each run the backbone on their
share of the images and end with the whole cache, equal to one process's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from _distributed_helpers import free_port
from _training_helpers import CLASSES
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import Classifier, build_head, freeze
from retinalnet.training import Trainer, _feature_cache
from retinalnet.training._distributed import DistributedContext
from retinalnet.transforms import Preprocessing


def _model() -> Classifier:
    torch.manual_seed(0)
    trunk = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )
    freeze(trunk)
    network = nn.Sequential(trunk, build_head(16, 4, hidden=8, dropout=0.2))
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))


def _build(
    root: str, decode: str, cache_dir: str | None, shard: bool = False
) -> _feature_cache.FeatureCache:
    return _feature_cache.build_feature_cache(
        _model(), KermanyOCT(root, "train"), batch_size=4, device="cpu", precision="fp32",
        progress=False, decode=decode, cache_dir=cache_dir, shard=shard,  # type: ignore[arg-type]
    )  # fmt: skip


def _worker(rank: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    extracted: list[int] = []
    extract = _feature_cache._extract

    def counting(*args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        rows, labels = extract(*args, **kwargs)  # type: ignore[arg-type]
        extracted.append(len(rows))
        return rows, labels

    _feature_cache._extract = counting  # type: ignore[assignment]
    try:
        results = {}
        for decode in ("pil", "tensor"):
            cache = _build(root, decode, cache_dir=str(Path(out) / "cache"), shard=True)
            results[decode] = cache.features
        alone = _build(root, "pil", cache_dir=None)  # without shard=True: all of it, no waiting
        results["alone"] = alone.features
        trainer = Trainer(_model(), feature_cache=True, max_epochs=1, batch_size=4, device="cpu",
                          precision="fp32", progress=False, seed=0)  # fmt: skip
        trainer.fit(KermanyOCT(root, "train"))  # the fit shares its cache build out too
        torch.save({"features": results, "extracted": extracted}, Path(out) / f"rank{rank}.pt")
        dist.barrier()  # the group started here is closed here, by every rank together
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_share_the_cache_build(tmp_path: Path) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=4, val=0, test=0, shape=(64, 64))
    mp.spawn(_worker, args=(free_port(), str(root), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # 16 images: 8 each for each path, 16 for the call without shard=True, 8 in the fit
    assert [r["extracted"] for r in ranks] == [[8, 8, 16, 8], [8, 8, 16, 8]]
    for decode in ("pil", "tensor"):
        single = _build(str(root), decode, cache_dir=None).features
        for rank in ranks:
            torch.testing.assert_close(rank["features"][decode], single)
            if decode == "pil":
                torch.testing.assert_close(rank["features"]["alone"], single)
    written = sorted(p.name for p in (tmp_path / "cache").rglob("*.npy"))
    assert written == ["features.npy", "features.npy", "targets.npy", "targets.npy"]


@pytest.mark.parametrize(("length", "world_size"), [(16, 2), (7, 3), (2, 2), (5, 1)])
def test_shares_cover_every_item_once_in_order(length: int, world_size: int) -> None:
    shares = [DistributedContext(r, world_size).share(length) for r in range(world_size)]
    assert [i for share in shares for i in share] == list(range(length))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
