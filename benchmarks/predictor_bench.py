"""Accuracy predictors on DyNAS-T's OFA-MobileNetV3 w1.0 data: train on the ``evo*`` files,
test on the ``linas*`` files (no subnet in common).

Models: OFA's recipe (its 128-float encoding and MLP, trained here), ridge regression on OFA's
encoding, OFA's released predictor (trained for w1.2, on other data), and lutnas's predictor
with its candidate configurations. Every trainable model is chosen by a validation split of
the training files (20%, seed 0); the table reports validation and test rank correlations.

    python benchmarks/predictor_bench.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search import (
    LutnasPredictor,
    OFAEncoding,
    build_ofa_mlp,
    load_accuracy_data,
    load_ofa_predictor,
    prediction_metrics,
)

DATA = Path("/work/shared/data") if not (ROOT.parent / "shared" / "data").is_dir() else ROOT.parent / "shared" / "data"
SPACE = "ofa-mbv3-w1.0"


class OFARecipeMLP:
    """OFA's predictor recipe: its MLP on its encoding predicting the accuracy fraction minus the
    training mean (OFA's ``base_acc``), MSE loss, Adam."""

    def __init__(self, epochs: int = 100, lr: float = 1e-3, batch_size: int = 128, random_state: int = 0) -> None:
        self.epochs, self.lr, self.batch_size, self.random_state = epochs, lr, batch_size, random_state

    def fit(self, batch, y_pct: np.ndarray) -> OFARecipeMLP:
        torch.manual_seed(self.random_state)
        self.encoder_ = OFAEncoding(SPACE)
        x = torch.from_numpy(self.encoder_(batch))
        self.base_acc_ = float(np.mean(y_pct) / 100.0)
        y = torch.from_numpy((y_pct / 100.0 - self.base_acc_).astype(np.float32))
        self.net_ = build_ofa_mlp()
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.random_state)
        for _ in range(self.epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), self.batch_size):
                idx = perm[i : i + self.batch_size]
                loss = torch.nn.functional.mse_loss(self.net_(x[idx])[:, 0], y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self

    def predict(self, batch) -> np.ndarray:
        with torch.no_grad():
            return (self.net_(torch.from_numpy(self.encoder_(batch)))[:, 0].numpy() + self.base_acc_) * 100.0


class OFARidge:
    """Ridge regression on OFA's encoding."""

    def __init__(self, alpha: float = 10.0) -> None:
        self.alpha = alpha

    def fit(self, batch, y: np.ndarray) -> OFARidge:
        from sklearn.linear_model import Ridge

        self.encoder_ = OFAEncoding(SPACE)
        self.model_ = Ridge(alpha=self.alpha).fit(self.encoder_(batch), y)
        return self

    def predict(self, batch) -> np.ndarray:
        return self.model_.predict(self.encoder_(batch))


def _run(name: str, make, train, val, full, test) -> dict:
    model = make().fit(train.to_batch(), train.accuracy_pct)
    val_m = prediction_metrics(model.predict(val.to_batch()), val.accuracy_pct)
    start = time.perf_counter()
    model = make().fit(full.to_batch(), full.accuracy_pct)
    train_s = time.perf_counter() - start
    test_m = prediction_metrics(model.predict(test.to_batch()), test.accuracy_pct)
    return {
        "model": name,
        "val_kendall": val_m["kendall"],
        "test_kendall": test_m["kendall"],
        "test_spearman": test_m["spearman"],
        "test_rmse": test_m["rmse"],
        "train_s": train_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    full = load_accuracy_data(sorted((DATA / "dynast").glob("*evo*.csv")))
    test = load_accuracy_data(sorted((DATA / "dynast").glob("*linas*.csv")))
    perm = np.random.default_rng(0).permutation(len(full))
    n_val = len(full) // 5
    val, train = full.subset(np.sort(perm[:n_val])), full.subset(np.sort(perm[n_val:]))

    rows = []
    for epochs in (30, 60):
        rows.append(
            _run(f"OFA recipe MLP ({epochs} epochs)", lambda e=epochs: OFARecipeMLP(epochs=e), train, val, full, test)
        )
    for alpha in (1.0, 10.0, 100.0):
        rows.append(
            _run(f"ridge on OFA encoding (alpha {alpha:g})", lambda a=alpha: OFARidge(a), train, val, full, test)
        )
    for label, params in (
        ("lutnas KRR, OFA encoding", {"encodings": ("ofa",), "length_scales": (9.0,)}),
        ("lutnas KRR, lutnas encoding", {"encodings": ("lutnas",), "length_scales": (12.0,)}),
        ("lutnas KRR ensemble (default)", {}),
    ):
        rows.append(
            _run(label, lambda p=params: LutnasPredictor(space=SPACE, random_state=0, **p), train, val, full, test)
        )
    ofa = load_ofa_predictor(DATA / "ofa" / "acc_predictor.pth")
    val_m = prediction_metrics(ofa.predict_batch(val.to_batch()), val.accuracy_pct)
    test_m = prediction_metrics(ofa.predict_batch(test.to_batch()), test.accuracy_pct)
    rows.append(
        {
            "model": "OFA pretrained (w1.2, no training here)",
            "val_kendall": val_m["kendall"],
            "test_kendall": test_m["kendall"],
            "test_spearman": test_m["spearman"],
            "test_rmse": test_m["rmse"],
            "train_s": 0.0,
        }
    )
    if args.json:
        print(json.dumps({"n_train": len(full), "n_val": len(val), "n_test": len(test), "rows": rows}, indent=2))
        return
    print(
        f"train {len(full)} (evo*, validation {len(val)} of them), test {len(test)} (linas*), "
        f"torch threads {args.threads}"
    )
    print("| model | val Kendall | test Kendall | test Spearman | test RMSE (%) | train (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['val_kendall']:.4f} | {r['test_kendall']:.4f} | {r['test_spearman']:.4f} | "
            f"{r['test_rmse']:.3f} | {r['train_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
