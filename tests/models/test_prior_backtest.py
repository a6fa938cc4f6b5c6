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
        curve = {}
        for weight in grid:
            values = []
            for u in users:
                scores = np.where(np.arange(6) == 5, -np.inf, rows(u) + weight * prior)
                values.append(_ndcg10(scores, seen[u], relevant[u]))
            curve[str(weight)] = round(float(np.mean(values)), 4)
        assert picked[group]["ndcg@10"] == pytest.approx(curve, abs=1e-4)
        best = max(grid, key=lambda w: (curve[str(w)], -w))
        assert picked[group]["weight"] == best and picked[group]["users"] == len(users)


def test_a_group_with_too_few_users_keeps_the_eval_pick():
    picked = prior_backtest.pick(_backtest(), lambda users, histories: np.zeros([len(users), 6]),
                                 np.zeros([1, 6]))
    assert picked == {"known": {"users": 2}, "cold": {"users": 1}}
