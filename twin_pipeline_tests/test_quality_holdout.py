"""Holdout-referenced quality and TSTR utility: sane on tables with a known signal, and able to fail.

Twins here are made by the real pipeline (fit on the training share, sample, protect) or by deliberately bad
generators, so each figure is checked in the direction it must move."""

import numpy as np
import pandas as pd
import pytest
from shapes import lending_table, narrow_table, overdraft_table

from twin_pipeline import pipeline, protection
from twin_pipeline.quality.holdout import holdout_evaluation, split
from twin_pipeline.quality.utility import tstr


def signal_table(n: int = 4_000, seed: int = 0) -> pd.DataFrame:
    """Loans whose default is driven by the debt ratio (strongly) and the region (weakly); 'noise' is noise."""
    rng = np.random.default_rng(seed)
    ratio = rng.gamma(2.0, 0.15, n)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
    logit = -3.0 + 7.0 * ratio + np.where(region == "west", 0.8, 0.0)
    default = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"loan_id": np.arange(n), "income": rng.lognormal(10, 0.5, n).round(0),
                         "debt_ratio": ratio.round(3), "region": region, "noise": rng.normal(size=n),
                         "default": default})


def pipeline_twin(options=pipeline.CloneOptions()):
    def make(train, rows):
        engine = pipeline.fit_model(train, options)
        return protection.protect(engine.sample(rows, seed=1), train, engine, options)[0]
    return make


def shuffled_twin(train: pd.DataFrame, rows: int) -> pd.DataFrame:
    """Every column shuffled on its own: the marginals are perfect, every relation is gone."""
    rng = np.random.default_rng(3)
    return pd.DataFrame({name: rng.permutation(train[name].to_numpy()) for name in train.columns}).head(rows)


def test_split_is_a_seeded_partition_of_the_rows():
    real = signal_table(1_000)
    train, holdout = split(real, 0.2, seed=4)
    assert len(train) == 800 and len(holdout) == 200
    assert sorted(pd.concat([train, holdout])["loan_id"]) == list(range(1_000))
    assert split(real, 0.2, seed=4)[1]["loan_id"].tolist() == holdout["loan_id"].tolist()
    assert split(real, 0.2, seed=5)[1]["loan_id"].tolist() != holdout["loan_id"].tolist()


def test_a_twin_of_a_table_with_a_strong_default_predictor_keeps_its_utility_and_ceiling():
    real = signal_table()
    result = holdout_evaluation(real, pipeline_twin(pipeline.CloneOptions(primary_key="loan_id")),
                                primary_key="loan_id")
    holdout, utility = result["holdout"], result["utility"]
    assert 85 < holdout["ceiling"] <= 100 and holdout["n_holdout"] == 800
    assert 90 < holdout["quality_vs_ceiling"] < 105
    assert holdout["quality_vs_ceiling"] == pytest.approx(100 * holdout["twin_vs_holdout"] / holdout["ceiling"])
    assert set(holdout["columns"]) == {"income", "debt_ratio", "region", "noise", "default"}
    assert utility["target"] == "default" and utility["metric"] == "auc" and "loan_id" not in utility["importance_agreement"]["importances"]
    assert utility["real"] > 0.75 and utility["twin"] > 0.7 and abs(utility["gap"]) < 0.08
    assert utility["importance_agreement"]["top_real"][0] == "debt_ratio"
    assert utility["importance_agreement"]["top_twin"][0] == "debt_ratio"


def test_a_twin_without_relations_scores_below_the_ceiling_and_loses_its_utility():
    real = signal_table()
    result = holdout_evaluation(real, shuffled_twin, primary_key="loan_id")
    shapes, trends = result["holdout"]["column_shapes"], result["holdout"]["pair_trends"]
    assert shapes["twin"] == pytest.approx(shapes["ceiling"])  # the training share's own values, reshuffled
    assert trends["twin"] < trends["ceiling"] - 1.5 and result["holdout"]["quality_vs_ceiling"] < 99.5
    # The score barely moves (one related pair among ten); the model trained on the twin shows the loss.
    assert result["utility"]["twin"] < 0.6 < result["utility"]["real"]
    assert result["utility"]["gap"] > 0.15
    low, high = result["utility"]["gap_ci"]
    assert 0 < low <= result["utility"]["gap"] <= high  # the loss is stated with an interval that excludes none


def test_a_numeric_target_is_scored_by_r2():
    real = signal_table()
    train, holdout = split(real)
    result = tstr(train, train, holdout, primary_key="loan_id", target="debt_ratio")
    assert result["metric"] == "r2" and result["task"] == "regression"
    assert result["real"] == pytest.approx(result["twin"]) and result["gap"] == pytest.approx(0)
    assert result["gap_ci"] == pytest.approx([0, 0])
    assert result["importance_agreement"]["spearman"] == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [narrow_table, lending_table])
def test_holdout_and_utility_on_other_shapes(shape):
    real = shape(n=3_000)
    options = pipeline.CloneOptions()
    result = pipeline.reference_quality(real, options)
    assert 50 < result["holdout"]["ceiling"] <= 100 and 50 < result["quality_vs_ceiling"] < 110
    assert result["utility"]["target"] in ("default", "loan_status")
    assert 0.45 < result["utility"]["twin"] <= 1 and np.isfinite(result["utility"]["gap"])


def test_a_table_without_an_outcome_says_so_and_a_tiny_table_is_skipped():
    no_outcome = overdraft_table().rename(columns={"overdrawn": "flag"})
    result = pipeline.reference_quality(no_outcome, pipeline.CloneOptions())
    assert "give --target" in result["utility"]["skipped"]
    assert np.isfinite(result["quality_vs_ceiling"])
    assert pipeline.reference_quality(no_outcome, pipeline.CloneOptions(target="flag"))["utility"]["target"] == "flag"
    assert pipeline.reference_quality(overdraft_table(), pipeline.CloneOptions())["utility"]["target"] == "overdrawn"
    tiny = pipeline.reference_quality(overdraft_table(n=100), pipeline.CloneOptions())
    assert "too few" in tiny["holdout"]["skipped"] and tiny["quality_vs_ceiling"] is None


def test_the_auc_and_r2_of_every_bootstrap_draw_are_sklearns_on_the_rows_drawn():
    from sklearn.metrics import r2_score, roc_auc_score

    from twin_pipeline.quality.utility import _auc, _bootstrap_weights, _r2

    rng = np.random.default_rng(2)
    truth = rng.random(500) < 0.3
    score = np.round(rng.random(500) + 0.3 * truth, 1)  # coarse scores: many ties
    draws = [rng.integers(0, 500, 500) for _ in range(20)]
    weights = np.stack([np.bincount(rows, minlength=500) for rows in draws]).astype(float)
    proba = np.column_stack([1 - score / 2, score / 2])
    auc = _auc(proba, np.array([False, True]), truth, weights)
    assert auc == pytest.approx([roc_auc_score(truth[rows], score[rows]) for rows in draws])
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, 500)]  # three classes: one-vs-rest, by prevalence
    proba = rng.dirichlet(np.ones(3), 500) + 0.3 * (labels[:, None] == np.array(["a", "b", "c"]))
    proba /= proba.sum(axis=1, keepdims=True)
    auc = _auc(proba, np.array(["a", "b", "c"]), labels, weights)
    assert auc == pytest.approx([roc_auc_score(labels[rows], proba[rows], multi_class="ovr", average="weighted",
                                               labels=["a", "b", "c"]) for rows in draws])
    value, predicted = rng.normal(size=500), rng.normal(size=500)
    assert _r2(predicted, value, weights) == pytest.approx([r2_score(value[rows], predicted[rows]) for rows in draws])
    assert _bootstrap_weights(500, np.random.default_rng(0), rounds=3).sum(axis=1).tolist() == [500.0] * 3


def test_the_tstr_encoder_codes_each_value_by_its_text_as_the_real_training_share_ranks_them():
    from twin_pipeline.quality.metrics import _Column
    from twin_pipeline.quality.utility import MAX_CATEGORIES, _Encoder

    rng = np.random.default_rng(4)
    columns = {  # values that are equal but read differently, blanks, and ties in the counts
        "mixed": pd.Series([1, 1.0, True, "1", None, np.nan, "a", 2] * 40, dtype=object),
        "zeros": pd.Series([0.0, -0.0, 1.5, np.nan, 3.0] * 64),
        "ties": pd.Series(rng.permutation(np.repeat(np.arange(300), [2] * 150 + [1] * 150))[:320]),
        "text": pd.Series(rng.choice(["x", "y", "z", None], 320), dtype=object),
    }
    train = pd.DataFrame(columns)
    other = pd.DataFrame({"mixed": pd.Series(["1", 1.0, 7, None] * 80, dtype=object),
                          "zeros": pd.Series([-0.0, 2.0, np.nan, 0.0] * 80),
                          "ties": pd.Series(np.arange(320) % 301), "text": pd.Series(["z", "w"] * 160)})
    encoder = _Encoder(train, {name: _Column("categorical") for name in columns}, list(columns))
    for frame, encoded in ((train, encoder.train), (other, encoder(other))):
        for position, name in enumerate(columns):
            text = frame[name].astype("string")
            categories = train[name].astype("string").value_counts().index[:MAX_CATEGORIES]
            expected = pd.Index(categories).get_indexer(text).astype(float)
            expected[expected < 0] = len(categories)
            expected[text.isna().to_numpy()] = np.nan
            assert np.array_equal(encoded[:, position], expected, equal_nan=True), name
            assert encoder.categories[name].equals(pd.Index(categories))


LOAD_MODEL = """
import scipy._lib._array_api as array_api, scipy._lib._docscrape as docscrape
from twin_pipeline.quality import utility
{setup}
utility.load_model()
import scipy.stats, sklearn.ensemble
assert array_api.FunctionDoc is docscrape.FunctionDoc
assert "Spearman" in scipy.stats.spearmanr.__doc__
print("Array API Standard Support" in scipy.stats.spearmanr.__doc__)
"""


@pytest.mark.parametrize("setup, table", [("", "False"), ("utility._DocstringAsWritten.__str__ = None", "True")])
def test_the_model_loads_with_scipys_docstrings_as_written_or_as_it_comes(setup, table):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", LOAD_MODEL.format(setup=setup)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [table]  # the table of array libraries: left out, or there when SciPy changed


def test_a_large_table_is_evaluated_on_a_bounded_sample(monkeypatch):
    from twin_pipeline.quality import holdout as module

    monkeypatch.setattr(module, "MAX_ROWS", 1_000)
    sizes = []
    result = holdout_evaluation(signal_table(3_000), lambda train, rows: sizes.append(rows) or train.head(rows),
                                primary_key="loan_id")
    assert sizes == [800] and result["holdout"]["n_holdout"] == 200 and result["utility"]["n_test"] == 200


def card_extract() -> pd.DataFrame:
    """Transactions with masked card numbers, which repeat over transactions, so they are no key."""
    rng = np.random.default_rng(7)
    cards = [f"4{rng.integers(10**4, 10**5)}******{rng.integers(1000, 9999)}" for _ in range(400)]
    return pd.DataFrame({"card_masked": rng.choice(cards, 3000), "amount_cents": rng.integers(100, 90_000, 3000),
                         "channel": rng.choice(["POS", "ECOM"], 3000),
                         "chargeback": (rng.random(3000) < 0.05).astype(int)})


def test_the_holdout_reference_does_not_score_fresh_identifiers():
    """Masked cards replaced by fresh ones (never real) but scored as a category in the reference put the twin
    5 points under its ceiling."""
    result = pipeline.reference_quality(card_extract(), pipeline.CloneOptions())
    assert "card_masked" not in result["holdout"]["columns"]
    assert result["quality_vs_ceiling"] > 97


def test_the_reference_finds_direct_identifiers_once_on_the_whole_table(monkeypatch):
    """Its training share's twin mints the columns the product mints (found on the whole table, not again on the
    share), and `twin clone`'s helper process is handed them instead of scanning the table a second time."""
    from twin_pipeline.privacy import identifiers

    real = card_extract()
    found = identifiers.detect_direct_identifiers(real)
    assert list(found) == ["card_masked"]
    scans = []
    monkeypatch.setattr(identifiers, "detect_direct_identifiers", lambda *args, **kwargs: scans.append(1) or found)
    handed = pipeline.reference_quality(real, pipeline.CloneOptions(), identifiers=found)
    assert scans == [] and "card_masked" not in handed["holdout"]["columns"]
    scanned = pipeline.reference_quality(real.copy(), pipeline.CloneOptions())  # a new frame: no answer kept
    assert scans == [1]
    assert [scanned["quality_vs_ceiling"], scanned["utility"]["gap"]] == [handed["quality_vs_ceiling"], handed["utility"]["gap"]]
