"""Synthetic data that arrives in spans, week by week, and drifts.

Synthetic spans. `recdistill synth --spans N` writes N consecutive weeks of data, span-1/ to
span-N/, each in the input format (docs/data.md): the week's interactions, and the users and items
that arrive in it. The world is synth.py's: taste clusters (an item's cluster is its first genre),
titles, genres and user features that follow the clusters, users loyal to a dominant cluster. On
top of it, what drifts:
  - Items arrive every span: half of the catalog in span 1 (a back catalogue of mixed ages), the
    rest evenly over the later spans. An item is interacted with only from its span on, gets half
    its due in that first week (it arrives during it), then fades: its popularity halves every
    `half_life` spans (default 3). Within a cluster, popularity is Zipf-like (exponent 0.4) times
    that fading, so most of a week's interactions go to recent items.
  - Users arrive the same way, half in span 1; a user's activity level stays fixed.
  - Tastes shift gradually: every span, 5% of the users move their dominant cluster to one drawn
    by the current cluster popularity, which itself takes a random-walk step of about 10%.
  - With `shift_at`, tastes change abruptly in that span: the clusters' popularity ranks rotate by
    half (the most popular cluster falls to the middle, the middle one leads) and 80% of the users
    move their dominant cluster along with the popularity it had.
At 8 spans of 2,000 users, 1,000 items and 20,000 interactions a span (seeds 0-4), the
L-infinity distance between consecutive spans' genre distributions stays at 0.004-0.025 between
gradual spans and jumps to 0.10-0.14 at a shift. Item ids churn every span (0.005-0.023) and the
shift does not stand out in them (0.011-0.020): a drift check should watch the genres. A ranking
never refit after span 1 does worse than one refit on the latest span from span 3 on: ndcg@10
about 20% lower in span 3 and 70% lower in span 8 (most popular of the user's cluster 0.08
against 0.26, EASE 0.06 against 0.22).

Memory: one span's interactions are held in memory (at most 604,800, one a second).
"""

import json
from pathlib import Path

import numpy as np

from tfx_pipeline.datasets.synth import (_GOLDEN, _T0, ITEM_COLUMNS, USER_COLUMNS, _World,
                                         _write_csv)

WEEK_SECONDS = 7 * 86_400
MAX_INTERACTIONS_PER_SPAN = WEEK_SECONDS  # one a second, so that timestamps stay distinct
_FIRST_SPAN_SHARE = 0.5  # of the users and of the items, arriving in span 1
_MOVERS = 0.05  # share of users whose dominant cluster moves in a gradual span
_POPULARITY_STEP = 0.1  # sigma of the log-normal step of each cluster's popularity per span
_SHIFT_MOVERS = 0.8  # share of users that follow the popularity rotation at the shift
_ITEM_ZIPF = 0.4  # within a cluster; flatter than synth.py's 0.9, as only recent items compete
_MAX_ACTIVITY = 10.0  # times the median user's activity
_DRAWS = 4  # uniforms per interaction row: in-cluster?, other cluster, rating noise, time jitter


def write_synthetic_spans(output_dir, spans: int, users: int, items: int, interactions: int,
                          seed: int = 0, shift_at: int | None = None,
                          half_life: float = 3.0) -> dict:
    """Writes output_dir/span-1 ... span-N (interactions.csv, users.csv, items.csv) and synth.json.

    `users`, `items` and `interactions` are totals over all spans, as in write_synthetic: half of
    the users and items arrive in span 1, the rest evenly over spans 2..N; the interactions are
    split evenly (the earlier spans get the remainders). Span k covers week k, [start, start + 7 days)
    with start = 2020-01-01 + 7 (k - 1) days; its interactions are time-ordered, with distinct
    timestamps. A span's users.csv and items.csv hold only the users and items new in it (no
    updates); its interactions refer to users and items of that span or earlier ones. Ids number
    users and items in arrival order. The same arguments give the same bytes, and the spans before
    `shift_at` are the same with and without it.

    Returns:
      The summary, also in synth.json: the arguments and "per_span", a list of {"span",
      "directory", "start", "end" (Unix seconds, end exclusive), "users" and "items" (how many
      exist by the span's end), "new_users", "new_items", "interactions", "shift" (bool)}.
    """
    _check(spans, users, items, interactions, shift_at, half_life)
    world = _World(users, items, interactions, seed)
    if shift_at is not None and len(world.genres) < 2:
        raise ValueError(f"a taste shift needs at least 2 taste clusters, so items >= 9; got {items}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    new_users, new_items = _arrivals(users, spans), _arrivals(items, spans)
    each, extra = divmod(interactions, spans)
    rows_per_span = [each + (k < extra) for k in range(spans)]
    state = _State(world, _birth_order(world.item_cluster), new_items, new_users, half_life)
    user_rows, item_rows = world.user_rows(), state.item_rows(world.item_rows())
    per_span = []
    for k in range(1, spans + 1):
        if k > 1:
            state.drift(k)
        if k == shift_at:
            state.shift(k)
        directory = out / f"span-{k}"
        directory.mkdir(exist_ok=True)
        users_before, items_before = int(new_users[:k - 1].sum()), int(new_items[:k - 1].sum())
        _write_csv(directory / "users.csv", USER_COLUMNS,
                   user_rows[users_before:users_before + new_users[k - 1]])
        _write_csv(directory / "items.csv", ITEM_COLUMNS,
                   item_rows[items_before:items_before + new_items[k - 1]])
        start = _T0 + (k - 1) * WEEK_SECONDS
        state.write_interactions(directory / "interactions.csv", k, rows_per_span[k - 1], start)
        per_span.append({
            "span": k, "directory": directory.name, "start": start, "end": start + WEEK_SECONDS,
            "users": users_before + int(new_users[k - 1]), "items": items_before + int(new_items[k - 1]),
            "new_users": int(new_users[k - 1]), "new_items": int(new_items[k - 1]),
            "interactions": rows_per_span[k - 1], "shift": k == shift_at})
    summary = {"spans": spans, "users": users, "items": items, "interactions": interactions,
               "shift_at": shift_at, "half_life": half_life, "per_span": per_span}
    (out / "synth.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


class _State:
    """What drifts from span to span: cluster popularity, users' dominant clusters, item ages.

    Users and items are numbered in arrival order, so those that exist in span k are a prefix.
    """

    def __init__(self, world: _World, item_order: np.ndarray, new_items: np.ndarray,
                 new_users: np.ndarray, half_life: float):
        self.world, self.seed, self.half_life = world, world.seed, half_life
        self.item_order = item_order  # arrival position -> _World's item index
        self.item_cluster = world.item_cluster[item_order]
        self.item_quality = world.item_quality[item_order]
        self.item_birth = np.repeat(np.arange(1, len(new_items) + 1), new_items)
        self.user_birth = np.repeat(np.arange(1, len(new_users) + 1), new_users)
        rng = np.random.default_rng([self.seed, 10])
        # Span 1's items are a back catalogue, as if they had arrived at the later spans' rate in
        # the weeks before: without it, span 2 would be the one where all of them fade at once.
        later_rate = new_items[1] if len(new_items) > 1 else new_items[0]
        self.item_fade_birth = self.item_birth.copy()
        self.item_fade_birth[:new_items[0]] = 1 - rng.permutation(new_items[0]) // later_rate
        c = len(world.genres)
        # Zipf within each cluster over a random order of its items, before any fading.
        rank = np.empty(len(item_order), np.int64)
        order = np.lexsort((rng.random(len(item_order)), self.item_cluster))
        start = np.searchsorted(self.item_cluster[order], np.arange(c))
        rank[order] = np.arange(len(order)) - np.repeat(start, np.diff(np.append(start, len(order))))
        self.item_appeal = 1.0 / (rank + 1.0) ** _ITEM_ZIPF
        # Log-normal, capped near its 99th percentile: one user's move is no drift of the span.
        self.activity = np.minimum(rng.lognormal(0.0, 1.0, world.n_users), _MAX_ACTIVITY)
        self.popularity = np.diff(np.concatenate([[0.0], world.cluster_cdf]))
        self.home = world.user_cluster.copy()
        self.seen = np.zeros(world.n_users, np.int64)  # each user's rows so far: their walk's step

    def item_rows(self, world_rows: list[tuple]) -> list[tuple]:
        """_World's item rows in arrival order, renumbered: item ids follow arrival too."""
        fmt = self.world.item_fmt
        return [(fmt % (i + 1),) + tuple(world_rows[w][1:])
                for i, w in enumerate(self.item_order.tolist())]

    def drift(self, span: int) -> None:
        """The gradual step into `span`: its draws depend on (seed, span) only, so the spans
        before a shift do not depend on whether (or where) it comes."""
        rng = np.random.default_rng([self.seed, 11, span])
        step = np.exp(_POPULARITY_STEP * rng.normal(size=len(self.popularity)))
        self.popularity = self.popularity * step / (self.popularity * step).sum()
        movers = (rng.random(len(self.home)) < _MOVERS) & (self.user_birth < span)
        target = np.searchsorted(np.cumsum(self.popularity), rng.random(len(self.home)), side="right")
        self.home = np.where(movers, np.minimum(target, len(self.popularity) - 1), self.home)

    def shift(self, span: int) -> None:
        """The abrupt change in `span`: popularity ranks rotate by half; users follow their
        cluster's former popularity (`_SHIFT_MOVERS` of those here, all those yet to arrive)."""
        c = len(self.popularity)
        ranked = np.argsort(-self.popularity, kind="stable")  # ranked[r]: the cluster at rank r
        rotated = ranked[(np.arange(c) + c // 2) % c]
        follow = np.empty(c, np.int64)
        follow[rotated] = ranked  # follow[x]: the cluster that now has x's former popularity
        self.popularity = self.popularity[rotated][np.argsort(ranked)]
        rng = np.random.default_rng([self.seed, 12])
        movers = (rng.random(len(self.home)) < _SHIFT_MOVERS) | (self.user_birth > span)
        self.home = np.where(movers, follow[self.home], self.home)

    def write_interactions(self, path: Path, span: int, n: int, start: int) -> None:
        rng = np.random.default_rng([self.seed, 13, span])
        world = self.world
        n_users = int((self.user_birth <= span).sum())
        counts = rng.multinomial(n, self.activity[:n_users] / self.activity[:n_users].sum())
        user = np.repeat(np.arange(n_users), counts)
        step = self.seen[:n_users][user] + np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        self.seen[:n_users] += counts
        time_order = rng.permutation(n)
        user, step = user[time_order], step[time_order]
        draw = rng.random((n, _DRAWS))
        home = self.home[user]
        other = np.searchsorted(np.cumsum(self.popularity), draw[:, 1], side="right")
        cluster = np.where(draw[:, 0] < world.loyalty[user], home,
                           np.minimum(other, len(self.popularity) - 1))
        # synth.py's golden-ratio walk: a user's picks cover the popularity CDF evenly, so only
        # head items repeat.
        walk = (world.phase[user] + step * _GOLDEN) % 1.0
        table, order = self._item_table(span)
        item = order[np.minimum(np.searchsorted(table, cluster + walk, side="right"), len(order) - 1)]
        mean = 2.6 + 1.3 * (self.item_cluster[item] == home) + self.item_quality[item] \
            + world.user_bias[user]
        rating = np.clip(np.rint(mean + (draw[:, 2] - 0.5) * 2.2), 1, 5).astype(np.int64)
        # Row j gets a second of [j W / n, (j + 1) W / n), W the week: at least one, as n <= W, so
        # the timestamps strictly increase. Integer arithmetic: no float rounding to collide.
        j = np.arange(n, dtype=np.int64)
        first, end = j * WEEK_SECONDS // n, (j + 1) * WEEK_SECONDS // n
        ts = start + first + np.floor(draw[:, 3] * (end - first)).astype(np.int64)
        fmt = f"{world.user_fmt},{world.item_fmt},%d,%d"
        lines = [fmt % row for row in zip((user + 1).tolist(), (item + 1).tolist(),
                                          ts.tolist(), rating.tolist())]
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("user_id,item_id,timestamp,rating\n")
            f.write("".join(line + "\n" for line in lines))

    def _item_table(self, span: int) -> tuple[np.ndarray, np.ndarray]:
        """An inverse-CDF table over the items that exist in `span`, as in synth.py: cluster k's
        items cover (k, k + 1], each by its appeal halved every `half_life` spans of its age."""
        alive = int((self.item_birth <= span).sum())
        cluster = self.item_cluster[:alive]
        age = span - self.item_fade_birth[:alive]
        # Items arrive during their first week: half of it, on average, is theirs.
        weight = self.item_appeal[:alive] * 0.5 ** (age / self.half_life) * np.where(age == 0, 0.5, 1.0)
        order = np.argsort(cluster, kind="stable")
        c = len(self.popularity)
        start = np.searchsorted(cluster[order], np.arange(c))
        end = np.append(start[1:], alive)
        cum = np.cumsum(weight[order])
        base = np.concatenate([[0.0], cum])[start]
        table = cluster[order] + (cum - np.repeat(base, end - start)) \
            / np.repeat(cum[end - 1] - base, end - start)
        table[end - 1] = np.arange(1, c + 1)  # exact upper ends, so no draw falls past a cluster
        return table, order


def _birth_order(item_cluster: np.ndarray) -> np.ndarray:
    """_World's item indices in arrival order: the first item of every cluster, then the rest in
    index order, so that every cluster has an item from span 1 on."""
    first = np.zeros(len(item_cluster), bool)
    first[np.unique(item_cluster, return_index=True)[1]] = True
    return np.argsort(~first, kind="stable")


def _arrivals(total: int, spans: int) -> np.ndarray:
    """New users (or items) per span: half in span 1, the rest evenly (the remainder early)."""
    if spans == 1:
        return np.array([total])
    later = total - int(np.ceil(total * _FIRST_SPAN_SHARE))
    each, extra = divmod(later, spans - 1)
    return np.array([total - later] + [each + (i < extra) for i in range(spans - 1)])


def _check(spans, users, items, interactions, shift_at, half_life) -> None:
    if spans < 1:
        raise ValueError(f"spans must be >= 1, got {spans}")
    if min(users, items) < 2 * spans:
        raise ValueError(f"users and items must be >= 2 * spans ({2 * spans}), so that some arrive "
                         f"in every span; got users={users}, items={items}")
    if not spans <= interactions <= spans * MAX_INTERACTIONS_PER_SPAN:
        raise ValueError(f"interactions must be in spans..spans * {MAX_INTERACTIONS_PER_SPAN:,} (at "
                         f"least one a span, at most one a second), got {interactions}")
    if shift_at is not None and not 2 <= shift_at <= spans:
        raise ValueError(f"shift_at must be in 2..spans (2..{spans}), got {shift_at}")
    if not half_life > 0:
        raise ValueError(f"half_life must be > 0, got {half_life}")
