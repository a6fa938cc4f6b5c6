"""Synthetic datasets in recdistill's input format, with structure a model can learn.

Users and items fall into taste clusters (an item's cluster is its first genre). A user draws
most interactions from a dominant cluster and rates those higher; popularity is Zipf-like over
clusters and over items within a cluster; titles, genres and years of items and the age, gender
and occupation of users all correlate with the cluster. interactions.csv is a time-ordered log
written in numpy chunks, so its size is not bounded by memory.
"""

import csv
import json
import time
from pathlib import Path

import numpy as np

from components.ingest import reasons

USER_COLUMNS = ("user_id", "age", "gender", "occupation")
ITEM_COLUMNS = ("item_id", "title", "year", "genres")
_CHUNK_ROWS = 100_000
_T0 = 1_577_836_800  # 2020-01-01T00:00:00Z
_SPAN = 2 * 365 * 86_400
_MIN_PER_USER = 5
_DRAWS = 4  # uniforms per interaction row: in-cluster?, other cluster, rating noise, time jitter
_GOLDEN = 0.6180339887498949
_BAD_KINDS = (reasons.MISSING_ID, reasons.BAD_TIMESTAMP, reasons.UNKNOWN_ITEM,
              reasons.WRONG_FIELD_COUNT)
_GENRES = ("Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary",
           "Drama", "Family", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
           "Sci-Fi", "Sports", "Thriller", "War", "Western")
_OCCUPATIONS = ("administrator", "artist", "doctor", "educator", "engineer", "entertainment",
                "executive", "healthcare", "homemaker", "lawyer", "librarian", "marketing",
                "none", "other", "programmer", "retired", "salesman", "scientist", "student",
                "technician", "writer")
_SYLLABLES = ("ka", "lo", "mi", "ra", "ve", "su", "to", "na", "ri", "dor", "len", "mar", "bel",
              "sha", "qui", "zan", "tor", "el", "ony", "gra", "fen", "pol", "dri", "vos")
_GENERIC_WORDS = ("Night", "Day", "Return", "Story", "Last", "First", "Lost", "Secret", "City",
                  "House", "Road", "Man", "Woman", "Love", "War", "Home", "Dark", "Summer",
                  "Winter", "Game", "Dream", "Life", "World", "Time")


def write_synthetic(output_dir, users: int, items: int, interactions: int, seed: int = 0,
                    bad_share: float = 0.0) -> dict:
    """Writes interactions.csv, users.csv, items.csv and synth.json into `output_dir`.

    The same arguments give the same bytes. `bad_share` of the interaction rows (rounded) are
    replaced by invalid rows, equally of the kinds missing_id, bad_timestamp, unknown_item and
    wrong_field_count (see components/ingest/reasons.py); the file keeps `interactions` rows.

    Returns:
      {"users": n, "items": m, "interactions": k, "bad": {reason: count}}, also in synth.json.
    """
    if users < 1 or items < 1 or interactions < 0:
        raise ValueError("write_synthetic needs users >= 1, items >= 1 and interactions >= 0")
    if not 0.0 <= bad_share <= 1.0:
        raise ValueError(f"bad_share must be in [0, 1], got {bad_share}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _World(users, items, interactions, seed)
    world.write_users(out / "users.csv")
    world.write_items(out / "items.csv")
    n_bad = int(round(bad_share * interactions))
    world.write_interactions(out / "interactions.csv", n_bad)
    bad = {kind: len(range(i, n_bad, len(_BAD_KINDS))) for i, kind in enumerate(_BAD_KINDS)}
    summary = {"users": users, "items": items, "interactions": interactions,
               "bad": {kind: count for kind, count in bad.items() if count}}
    (out / "synth.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


class _World:
    """Clusters, catalog and users: everything but the interaction rows, held in memory."""

    def __init__(self, users: int, items: int, interactions: int, seed: int):
        self.n_users, self.n_items, self.n_rows, self.seed = users, items, interactions, seed
        self.user_fmt = f"u%0{max(6, len(str(users)))}d"
        self.item_fmt = f"i%0{max(6, len(str(items)))}d"
        rng = np.random.default_rng([seed, 0])
        c = int(np.clip(round(np.sqrt(items) / 2), 1, len(_GENRES)))
        self.genres = [_GENRES[g] for g in rng.permutation(len(_GENRES))[:c]]
        cluster_w = 1.0 / np.arange(1, c + 1) ** 0.8
        self.cluster_cdf = np.cumsum(cluster_w) / cluster_w.sum()
        self.cluster_cdf[-1] = 1.0
        # Items: every cluster gets at least one, popularity is Zipf within the cluster.
        self.item_cluster = rng.permutation(np.arange(items) % c)
        self.item_quality = rng.normal(0.0, 0.35, items)
        # Inverse-CDF table: cluster k's items, in a random popularity order, cover (k, k + 1].
        order = np.lexsort((rng.random(items), self.item_cluster))
        start = np.searchsorted(self.item_cluster[order], np.arange(c))
        end = np.append(start[1:], items)
        weight = 1.0 / (np.arange(items) - np.repeat(start, end - start) + 1.0) ** 0.9
        cum = np.cumsum(weight)
        base = np.concatenate([[0.0], cum])[start]
        table = self.item_cluster[order] + (cum - np.repeat(base, end - start)) \
            / np.repeat(cum[end - 1] - base, end - start)
        table[end - 1] = np.arange(1, c + 1)  # exact upper ends, so no draw falls past a cluster
        self.item_table, self.item_order = table, order
        # Users: dominant cluster, loyalty, rating bias, and a skewed activity level.
        urng = np.random.default_rng([seed, 1])
        self.user_cluster = np.searchsorted(self.cluster_cdf, urng.random(users), side="right")
        self.loyalty = urng.uniform(0.6, 0.9, users)
        self.user_bias = urng.normal(0.0, 0.3, users)
        self.phase = urng.random(users)
        floor = _MIN_PER_USER if interactions >= _MIN_PER_USER * users else interactions // users
        activity = urng.lognormal(0.0, 1.0, users)
        counts = floor + urng.multinomial(interactions - floor * users, activity / activity.sum())
        self.user_end = np.cumsum(counts)
        self.user_start = self.user_end - counts
        self.rng = rng

    def write_users(self, path: Path) -> None:
        _write_csv(path, USER_COLUMNS, self.user_rows())

    def user_rows(self) -> list[tuple]:
        """users.csv's rows, user i (0-based) at index i; features follow the user's cluster."""
        rng, c = np.random.default_rng([self.seed, 2]), len(self.genres)
        mean_age = rng.uniform(18, 55, c)[self.user_cluster]
        age = np.clip(np.rint(mean_age + rng.normal(0, 8, self.n_users)), 13, 80).astype(int)
        female = rng.random(self.n_users) < rng.uniform(0.2, 0.8, c)[self.user_cluster]
        favourite = rng.integers(len(_OCCUPATIONS), size=c)[self.user_cluster]
        job = np.where(rng.random(self.n_users) < 0.5, favourite,
                       rng.integers(len(_OCCUPATIONS), size=self.n_users))
        return list(zip((self.user_fmt % (u + 1) for u in range(self.n_users)), age.tolist(),
                        np.where(female, "F", "M").tolist(), (_OCCUPATIONS[j] for j in job)))

    def write_items(self, path: Path) -> None:
        _write_csv(path, ITEM_COLUMNS, self.item_rows())

    def item_rows(self) -> list[tuple]:
        """items.csv's rows, item i (0-based) at index i; title words, year and genres follow
        the item's cluster."""
        rng, c = np.random.default_rng([self.seed, 3]), len(self.genres)
        words = _pseudo_words(rng, 8 * c).reshape(c, 8)  # each cluster's own title words
        year_mean = rng.uniform(1960, 2015, c)[self.item_cluster]
        year = np.clip(np.rint(year_mean + rng.normal(0, 8, self.n_items)), 1920, 2024)
        second = rng.integers(c, size=self.n_items)
        draws = rng.random((self.n_items, 4))
        word1 = rng.integers(8, size=self.n_items)
        word2 = (word1 + rng.integers(1, 8, size=self.n_items)) % 8  # never the same word twice
        generic = rng.integers(len(_GENERIC_WORDS), size=self.n_items)
        rows = []
        for i, k in enumerate(self.item_cluster.tolist()):
            own = [words[k, word1[i]]] + ([words[k, word2[i]]] if draws[i, 0] < 0.5 else [])
            title = " ".join(own + [_GENERIC_WORDS[generic[i]]] if draws[i, 1] < 0.6 else own)
            if draws[i, 2] < 0.1:  # ml-100k style, e.g. "Usual Suspects, The": needs quoting
                title += ", The"
            elif draws[i, 2] < 0.13:
                title = f'The "{title}" Affair'
            genres = [self.genres[k]]
            if draws[i, 3] < 0.35 and second[i] != k:
                genres.append(self.genres[second[i]])
            rows.append((self.item_fmt % (i + 1), title, int(year[i]), "|".join(genres)))
        return rows

    def write_interactions(self, path: Path, n_bad: int) -> None:
        n = self.n_rows
        # File row j holds logical row (a*j + b) mod n; logical rows are grouped by user, so this
        # bijection spreads every user's rows over the whole (time-ordered) file.
        a = max(1, int(n * _GOLDEN))
        while np.gcd(a, max(n, 1)) != 1:
            a += 1
        b = int(self.rng.integers(max(n, 1)))
        step = max(_SPAN, 4 * n) / max(n, 1)  # >= 4 s per row: timestamps strictly increase
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("user_id,item_id,timestamp,rating\n")
            for lo in range(0, n, _CHUNK_ROWS):
                hi = min(n, lo + _CHUNK_ROWS)
                lines = self._rows(lo, hi, a, b, step)
                self._inject_bad(lines, lo, hi, n_bad)
                f.write("\n".join(lines) + "\n")

    def _rows(self, lo: int, hi: int, a: int, b: int, step: float) -> list[str]:
        j = np.arange(lo, hi, dtype=np.int64)
        # Row j's draws depend on (seed, j) only, so the chunk size never changes the output.
        bits = np.random.PCG64(np.random.SeedSequence([self.seed, 4]))
        bits.advance(_DRAWS * lo)
        draw = np.random.Generator(bits).random((hi - lo, _DRAWS))
        logical = (a * j + b) % self.n_rows
        user = np.searchsorted(self.user_end, logical, side="right")
        k = logical - self.user_start[user]
        home = self.user_cluster[user]
        other = np.searchsorted(self.cluster_cdf, draw[:, 1], side="right")
        cluster = np.where(draw[:, 0] < self.loyalty[user], home, other)
        # A golden-ratio walk per user instead of independent draws: the user's picks cover the
        # popularity CDF evenly, so only head items (p > 1/count) repeat, as in real logs.
        walk = (self.phase[user] + k * _GOLDEN) % 1.0
        pos = np.searchsorted(self.item_table, cluster + walk, side="right")
        item = self.item_order[np.minimum(pos, self.n_items - 1)]
        mean = 2.6 + 1.3 * (self.item_cluster[item] == home) + self.item_quality[item] \
            + self.user_bias[user]
        rating = np.clip(np.rint(mean + (draw[:, 2] - 0.5) * 2.2), 1, 5).astype(np.int64)
        ts = _T0 + np.floor((j + 0.5 * draw[:, 3]) * step).astype(np.int64)
        fmt = f"{self.user_fmt},{self.item_fmt},%d,%d"
        return [fmt % row for row in zip((user + 1).tolist(), (item + 1).tolist(),
                                         ts.tolist(), rating.tolist())]

    def _inject_bad(self, lines: list[str], lo: int, hi: int, n_bad: int) -> None:
        if n_bad == 0:
            return
        n, kinds = self.n_rows, len(_BAD_KINDS)
        # Bad row q sits at file row ((2q + 1) * n) // (2 * n_bad): evenly spread, all distinct.
        first = max(0, -(-(2 * n_bad * lo - n) // (2 * n)))
        for q in range(first, n_bad):
            row = ((2 * q + 1) * n) // (2 * n_bad)
            if row >= hi:
                break
            user, item, ts, rating = lines[row - lo].split(",")
            kind, variant = _BAD_KINDS[q % kinds], (q // kinds) % 2
            # Every valid row has a distinct timestamp, so each bad row derived from one is
            # unique too, and none can equal a valid row.
            if kind == reasons.MISSING_ID:
                user = ""
            elif kind == reasons.BAD_TIMESTAMP:
                ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(ts))) if variant \
                    else f"{ts}.5x"
            elif kind == reasons.UNKNOWN_ITEM:  # past the catalog's end, like a deleted item
                item = self.item_fmt % (self.n_items + 1 + q // kinds)
            else:  # an extra field, or the rating missing
                rating = f"{rating},{rating}" if variant else None
            lines[row - lo] = ",".join(x for x in (user, item, ts, rating) if x is not None)


def _pseudo_words(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` distinct capitalised made-up words of two or three syllables."""
    words: dict[str, None] = {}
    while len(words) < count:
        parts = rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))
        words.setdefault("".join(parts).capitalize(), None)
    return np.array(list(words), dtype=object)


def _write_csv(path: Path, header, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)
