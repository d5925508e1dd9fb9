"""The report's statistics: the best grid point per triple, and its spread over seeds."""

from __future__ import annotations

from typing import Any

from .load import (
    BEST_TEST,
    GRID,
    SCORES,
    SECTION,
    SELECT_ON_VALIDATION,
    TRIPLE,
    _pandas,
    algorithm_order,
    selection_metric,
)


def best_settings(frame: Any) -> Any:
    """Per (dataset, bn, triple): the (init, lr) with the best mean of the selection metric
    (``train/accuracy`` as published, ``val/accuracy`` when every run held a validation set
    out; see ``selection_metric``)."""
    select_on = selection_metric(frame)
    means = (
        frame.groupby([*SECTION, *TRIPLE, *GRID], dropna=False)
        .agg(
            **{c: (c, "mean") for c in (*SCORES, BEST_TEST, SELECT_ON_VALIDATION)},
            runs=("seed", "size"),
            seeds=("seed", "nunique"),
        )
        .reset_index()
    )
    means = means.sort_values(select_on, ascending=False, na_position="last", kind="stable")
    best = means.drop_duplicates([*SECTION, *TRIPLE]).copy()
    best["order"] = list(
        zip(best["binarize"], best["hidden_act"], best["method"].map(algorithm_order), strict=True)
    )
    return best.sort_values([*SECTION, "order"]).drop(columns="order")


def chosen_runs(frame: Any, best: Any) -> Any:
    """The runs (all seeds) of each triple's chosen (init, lr)."""
    keys = [*SECTION, *TRIPLE, *GRID]
    return frame.merge(best[keys], on=keys, how="inner")


def summary_table(runs: Any) -> Any:
    """Mean, std, 95% CI of the best test accuracy per triple; Mann-Whitney U against GD."""
    import numpy as np
    from scipy import stats

    pd = _pandas()
    gd_values = {
        (*section, act, binarize): group[BEST_TEST].dropna().to_numpy(float)
        for (*section, _, act, binarize), group in runs[runs["method"] == "GD"].groupby(
            [*SECTION, *TRIPLE]
        )
    }
    records = []
    for key, group in runs.groupby([*SECTION, *TRIPLE, *GRID], sort=True):
        values = group[BEST_TEST].dropna().to_numpy(float)
        record = dict(zip([*SECTION, *TRIPLE, *GRID], key, strict=True))
        n = len(values)
        mean = float(values.mean()) if n else float("nan")
        std = float(values.std(ddof=1)) if n > 1 else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
        record.update(
            metric=BEST_TEST,
            n=n,
            best_test_accuracy_mean=mean,
            best_test_accuracy_std=std,
            best_test_accuracy_ci95_low=mean - half,
            best_test_accuracy_ci95_high=mean + half,
        )
        section = tuple(record[k] for k in SECTION)
        gd = gd_values.get((*section, record["hidden_act"], record["binarize"]), np.empty(0))
        if record["method"] != "GD" and n and len(gd):
            test = stats.mannwhitneyu(values, gd, alternative="two-sided")
            record.update(vs_gd_u=float(test.statistic), vs_gd_p=float(test.pvalue))
        else:
            record.update(vs_gd_u=float("nan"), vs_gd_p=float("nan"))
        records.append(record)
    return pd.DataFrame(records)
