"""The recency prior's backtest on the newest span (models/prior_backtest.py): who is known and who
is cold, what the served model saw before the span, and the weights picked against an ndcg@10
computed here by hand in numpy."""

import numpy as np
import pytest

from models import interaction_data, prior_backtest

DAY = 86400
SPAN_FROM = 100 * DAY
# (user, item, day): users 1 and 2 come back in the span, user 3 is new in it, user 4 is not in it;
# item 5 is new in the span.
ROWS = [(1, 1, 80), (1, 2, 95), (1, 3, 101), (1, 5, 102), (2, 2, 90), (2, 4, 105), (3, 1, 103), (3, 2, 104),
        (4, 2, 50), (4, 3, 60), (4, 4, 70)]


def _split(rows):
    user, item, day = (np.array(column, np.int64) for column in zip(*rows))
    return interaction_data.Split(user, item, day * DAY)


def _backtest():
    return prior_backtest.newest_span(_split(ROWS), num_users=5, num_items=6, span_from=SPAN_FROM, history=2,
                                      days=30)


def test_the_newest_span_is_ranked_from_what_came_before_it():
    backtest = _backtest()
    assert backtest.known.users.tolist() == [1, 2]
    assert backtest.cold.users.tolist() == [3]
    # most recent first, before the span only
    assert backtest.latest[[1, 2, 3, 4]].tolist() == [[2, 1], [2, 0], [0, 0], [4, 3]]
    # the 30 days before the span's last earlier row (day 95): days 65-95: items 1, 2, 2, 4
    np.testing.assert_allclose(backtest.prior, np.log1p([0, 1, 2, 0, 1, 0]))
    assert np.flatnonzero(backtest.unknown).tolist() == [5]


def _ndcg10(scores, seen, relevant):
    """ndcg@10 of one user, by hand: seen items removed, the rest ranked by score."""
    order = [i for i in np.argsort(-scores, kind="stable") if i not in seen][:10]
    dcg = sum(1 / np.log2(rank + 2) for rank, item in enumerate(order) if item in relevant)
    return dcg / sum(1 / np.log2(rank + 2) for rank in range(min(len(relevant), 10)))


def test_each_group_picks_the_weight_with_the_best_backtest(monkeypatch):
    monkeypatch.setattr(prior_backtest, "MIN_USERS", 1)
    backtest = _backtest()
    rng = np.random.default_rng(3)
    served = rng.normal(size=[5, 6]).astype(np.float32)
    served[1, 5] = 9.0  # the served model cannot rank item 5: this score must not count
    cold = rng.normal(size=[1, 6]).astype(np.float32)
    seen_histories = []

    def score(users, histories):
        seen_histories.append(histories.tolist())
        return served[users]

    grid = (0.0, 0.5, 5.0)
    picked = prior_backtest.pick(backtest, score, cold, grid)
    assert seen_histories[0] == [[2, 1], [2, 0]]
    prior = np.log1p([0, 1, 2, 0, 1, 0])
    seen = {1: {0, 1, 2}, 2: {0, 2}, 3: {0}}
    relevant = {1: {3, 5}, 2: {4}, 3: {1, 2}}
    for group, users, rows in (("known", [1, 2], lambda u: served[u]), ("cold", [3], lambda u: cold[0])):
        curve, per_user = {}, {}
        for weight in grid:
            values = []
            for u in users:
                scores = np.where(np.arange(6) == 5, -np.inf, rows(u) + weight * prior)
                values.append(_ndcg10(scores, seen[u], relevant[u]))
            curve[str(weight)], per_user[weight] = round(float(np.mean(values)), 4), np.array(values)
        assert picked[group]["ndcg@10"] == pytest.approx(curve, abs=1e-4)
        best = max(grid, key=lambda w: (curve[str(w)], -w))
        d = per_user[best] - per_user[5.0]
        error = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
        assert picked[group]["best"] == best and picked[group]["users"] == len(users)
        assert picked[group]["paired"]["mean"] == pytest.approx(d.mean(), abs=1e-6)
        # two weights tested against the largest at a family-wise 5%, one-sided: 0.025 each, z = 1.96
        assert picked[group]["paired"]["z"] == 1.96
        assert picked[group]["weight"] == (best if best != 5.0 and d.mean() > 1.96 * error else 5.0)


def _noisy_backtest(users: int, better: int):
    """A known group of `users` who each come back in the span for item 6, which the prior ranks third
    (items 3 and 4 are more popular before the span): ndcg@10 1/log2(4) = 0.5 for everyone when the
    prior decides. The served model ranks item 6 first for the first `better` users, and below the 14
    items 7-20 for the others (item 6's score -5, theirs 0 with a prior of 0)."""
    rows = [(u, 1 + u % 2, 50) for u in range(1, users + 1)]  # before the span: item 1 or 2 (seen, removed)
    other = users + 1  # one more user makes the items popular before the span
    rows += [(other, 3, 60)] * 50 + [(other, 4, 60)] * 40 + [(other, 6, 60)] * 30
    rows += [(other, item, 10) for item in range(7, 21)]  # known, before the prior's 30 days: prior 0
    rows += [(u, 6, 110) for u in range(1, users + 1)]
    split = _split(rows)
    backtest = prior_backtest.newest_span(split, users + 2, 21, SPAN_FROM, history=2, days=30)
    served = np.zeros([users + 2, 21], np.float32)
    served[1:users + 1, 6] = [5.0 if u <= better else -5.0 for u in range(1, users + 1)]
    return backtest, served


def test_a_weight_other_than_the_largest_must_beat_it_beyond_the_noise():
    # 100: the prior decides; the others: the served model does. z: the one-sided 5% level shared by the
    # grid's other weights (Bonferroni): 0.025 each for two (1.96), 0.05 / 6 for six (2.394).
    small, large = ((0.0, 1.0, 100.0), 1.96), ((0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 100.0), 2.394)
    for (grid, z), better, beyond in ((small, 32, True), (small, 22, False), (small, 27, True),
                                      (large, 27, False), (large, 28, True)):  # better: of 40 users
        backtest, served = _noisy_backtest(40, better)
        picked = prior_backtest.pick(backtest, lambda users, h: served[users], served[:1], grid)["known"]
        # by hand: ndcg@10 1 for the users the model knows better, 0 for the others below 100; 0.5 at 100
        assert picked["ndcg@10"] == {**{str(w): better / 40 for w in grid[:-1]}, "100.0": 0.5}
        d = np.where(np.arange(1, 41) <= better, 0.5, -0.5)
        error = d.std(ddof=1) / np.sqrt(40)
        assert picked["paired"]["mean"] == pytest.approx(d.mean())
        assert picked["paired"]["standard_error"] == pytest.approx(error, abs=1e-6)
        assert picked["paired"]["z"] == z
        # 32: 4.7 standard errors, 22: 0.6, 27: 2.33 (beyond 1.96, within 2.394), 28: 2.72
        assert bool(d.mean() > z * error) is beyond
        assert picked["best"] == 0.0 and picked["weight"] == (0.0 if beyond else 100.0)
