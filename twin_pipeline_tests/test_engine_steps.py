"""A rare default that steps with a few discrete columns keeps its steps in the twin (issue #13, the reviewer's loan
book: TSTR AUC 0.63 real against 0.38 twin): a model trained on the twin ranks fresh real loans about as well as
one trained on the real loans."""

from __future__ import annotations

import numpy as np
import pandas as pd
from shapes import loan_book_table

from twin_pipeline import pipeline, protection
from twin_pipeline.engine import GaussianCopulaEngine
from twin_pipeline.options import CloneOptions
from twin_pipeline.quality.utility import tstr


def test_a_model_trained_on_the_protected_twin_of_a_loan_book_ranks_real_loans_like_one_trained_on_them():
    real_auc, twin_auc = [], []
    for seed in range(4):  # averaged over seeds: one 2 % default book's AUC moves by a few points
        real, fresh = loan_book_table(seed), loan_book_table(100 + seed, 20_000)
        options = CloneOptions(seed=seed)
        engine = pipeline.fit_model(real, options)
        twin, _ = protection.protect(engine.sample(len(real), seed=seed), real, engine, options)
        scores = tstr(real, engine.typed_view(twin), fresh, seed=seed)
        real_auc.append(scores["real"])
        twin_auc.append(scores["twin"])
    assert np.mean(real_auc) > 0.58  # the book carries a signal worth keeping
    assert min(twin_auc) > 0.55
    assert np.mean(real_auc) - np.mean(twin_auc) < 0.035  # the copula alone: 0.045, up to 0.074 on one book


def test_the_twin_keeps_a_step_the_copula_alone_makes_a_slope():
    """Default is about 2.3 times as frequent in grades E-G as in A-D; the copula alone gave 0.51-0.82 of that."""
    def ratio(frame: pd.DataFrame) -> float:
        risky = frame["grade"].isin(["E", "F", "G"])
        return frame["default"][risky].mean() / frame["default"][~risky].mean()

    for seed in range(3):
        real = loan_book_table(seed)
        twin = GaussianCopulaEngine().fit(real, seed=seed).sample(100_000, seed=seed)
        assert 0.8 < ratio(twin) / ratio(real) < 1.25
        assert abs(twin["default"].mean() - real["default"].mean()) < 0.003


def test_the_steps_are_saved_with_the_model(tmp_path):
    engine = GaussianCopulaEngine().fit(loan_book_table(2), seed=2)
    loaded = GaussianCopulaEngine.load(engine.save(tmp_path / "model.json"))
    assert engine.steps is not None
    pd.testing.assert_frame_equal(loaded.sample(5_000, seed=3), engine.sample(5_000, seed=3))


def test_an_outcome_a_rule_ties_to_another_column_is_left_to_the_rule(credit_card):
    """credit_card's expenditure is 0 when card is 'no': thresholds of its own put the approval share 13 points off."""
    engine = GaussianCopulaEngine().fit(credit_card, seed=0)
    twin = engine.sample(20_000, seed=0)
    assert engine.steps is None
    assert abs((twin["card"] == "yes").mean() - (credit_card["card"] == "yes").mean()) < 0.02
