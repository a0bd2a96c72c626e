"""Draw the pictures of docs/evaluation.rst into docs/_static/plots/ (committed PNGs).

Run from the repository root (about 15 s on one CPU core, offline, needs matplotlib)::

    python docs/make_plots.py

Everything is synthetic and seeded: a small CNN trained on SyntheticOCT scans, so the
pictures show what the functions draw, not results on the real Kermany data.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from retinalnet import SyntheticOCT
from retinalnet.datasets import count_images, make_synthetic_kermany
from retinalnet.gradcam import grad_cam_image
from retinalnet.models import small_cnn
from retinalnet.plots import (
    plot_class_counts,
    plot_confusion_matrix,
    plot_gradcam,
    plot_history,
    plot_image_sizes,
    plot_precision_recall_curves,
    plot_prediction,
    plot_roc_curves,
)
from retinalnet.predictor import Predictor
from retinalnet.training import ClassificationTask, EarlyStopping, Trainer
from retinalnet.transforms import Preprocessing

OUT = Path(__file__).resolve().parent / "_static" / "plots"
DPI = 80


def main() -> None:
    """Train the small model and write each picture."""
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    size = (128, 128)
    torch.manual_seed(0)
    model = small_cnn(preprocessing=Preprocessing(size=64))
    trainer = Trainer(
        model,
        ClassificationTask(lr=1e-3),
        batch_size=4,
        max_epochs=20,
        seed=0,
        device="cpu",
        progress=False,
        callbacks=[EarlyStopping(patience=5)],
    )
    history = trainer.fit(SyntheticOCT(12, shape=size, seed=0), SyntheticOCT(4, shape=size, seed=1))
    plot_history(history, save=OUT / "history.png", dpi=DPI)

    test = SyntheticOCT(10, shape=size, seed=2)
    result = trainer.evaluate(test)
    print(result.report(bootstrap=1000, seed=0))  # the example report of docs/evaluation.rst
    title = "synthetic test scans, 40 images"
    plot_confusion_matrix(result, title=title, save=OUT / "confusion_matrix.png", dpi=DPI)
    plot_roc_curves(result, title=f"ROC curves, {title}", save=OUT / "roc_curves.png", dpi=DPI)
    plot_precision_recall_curves(
        result,
        title=f"precision-recall, {title}",
        save=OUT / "precision_recall_curves.png",
        dpi=DPI,
    )

    predictor = Predictor(model, device="cpu")
    index = test.targets.index(1)  # the first DME scan
    image = test.image(index)
    prediction = predictor.topk(image, k=3)
    plot_prediction(image, prediction, true_label="DME", save=OUT / "prediction.png", dpi=DPI)

    cnv = test.image(0)
    heatmap = grad_cam_image(model, cnv, class_index=0)
    plot_gradcam(cnv, heatmap, title="Grad-CAM of CNV", save=OUT / "gradcam.png", dpi=DPI)

    with tempfile.TemporaryDirectory() as folder:
        root = make_synthetic_kermany(
            Path(folder) / "data", train={"CNV": 8, "DME": 4, "DRUSEN": 3, "NORMAL": 6},
            val=2, test=3, shape=(96, 128), seed=0,
        )  # fmt: skip
        plot_class_counts(count_images(root), save=OUT / "class_counts.png", dpi=DPI)
    # plot_image_sizes also reads a KermanyOCT split; here, sizes like the tutorial's
    # measured ones: heights 496-512, widths 384-1536 (median 512)
    generator = torch.Generator().manual_seed(0)
    widths = [384, 512, 512, 512, 768, 1024, 1536]
    picks = torch.randint(0, len(widths), (300,), generator=generator).tolist()
    heights = torch.randint(0, 2, (300,), generator=generator).tolist()
    sizes = [(widths[p], 496 if h else 512) for p, h in zip(picks, heights, strict=True)]
    plot_image_sizes(sizes, save=OUT / "image_sizes.png", dpi=DPI)
    for path in sorted(OUT.glob("*.png")):
        print(f"{path.relative_to(OUT.parents[1])}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
