"""The synthetic market: a seeded, streaming generator of a Douyin-like market in the import format.

The generative model (documented in ``docs/data-format.md``, section "Synthetic market"):

* users have latent interests over categories (Dirichlet), a price preference,
  demographics and an activity level; a few are bots;
* talents have a category profile, a heavy-tailed attractiveness (Pareto) and a
  latent conversion skill; a user follows talents by picking a category from
  its interests and then a talent in proportion to attractiveness x category
  weight (fitness-based preferential attachment), so audiences are heavy-tailed
  and made of users whose interests fit the talent;
* some talents buy bot followers that never engage or buy;
* engagement comes mostly from followed talents plus discovery in the user's
  interest categories; content-driven purchases follow engagement with content
  that features a product, the rest are organic purchases by interest and price;
* past collaborations have GMV from the documented model
  ``orders = K * A * I[c] * skill * price_fit * noise``, ``gmv = orders * price``
  where A is the talent's real audience (extrapolated to the platform), I[c] the
  audience's mean interest in the product's category, and price_fit a Gaussian
  in log price around the audience's mean price preference.

The latent truth goes to ``<out>/../<name>-truth`` (or ``truth_dir``) and is
never read by the matcher.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument
from kolmatch.progress import Task, silenced, task

__all__ = ["GMV_MODEL", "SCALES", "MarketScale", "generate_market", "oracle_orders"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class MarketScale:
    """Sizes of a generated market."""

    users: int
    talents: int
    merchants: int
    categories: int = 20
    chunk: int = 50_000


SCALES: dict[str, MarketScale] = {
    "tiny": MarketScale(2_000, 100, 20, 12, 2_000),
    "s": MarketScale(50_000, 2_000, 300),
    "m": MarketScale(1_000_000, 20_000, 5_000, chunk=100_000),
    "l": MarketScale(10_000_000, 200_000, 50_000, chunk=200_000),
}

CATEGORY_NAMES = (
    "Beauty",
    "Fashion",
    "Food",
    "Home",
    "Electronics",
    "Baby",
    "Sports",
    "Books",
    "Pets",
    "Health",
    "Jewelry",
    "Outdoor",
    "Toys",
    "Auto",
    "Digital",
    "Snacks",
    "Tea",
    "Liquor",
    "Furniture",
    "Gaming",
)
#: Typical log price (yuan) per category.
CATEGORY_LOG_PRICE = np.log(
    [
        120,
        180,
        60,
        90,
        900,
        150,
        220,
        45,
        80,
        160,
        600,
        300,
        110,
        400,
        700,
        35,
        150,
        350,
        1500,
        260,
    ]
)
#: The population a generated market stands for: follower counts and tiers are extrapolated to it.
PLATFORM_USERS = 100_000_000

#: Scale of the users' Dirichlet interest parameters (0.25 + 2 x category popularity): lower
#: means each user cares about fewer categories, so audiences gather by category. 0.1 makes the
#: in-category lift of audiences' interest, measured on follows the same way as on real Twitch
#: follows (bench/homophily.py), 8.4x against the real 9.0x; the first model (1.0) gave 2.3x.
INTEREST_CONCENTRATION = 0.1
#: Version of the generative model, written to truth.json (2: interests calibrated to real data).
MODEL_VERSION = 2
GMV_K = 0.004  # orders per (platform-scaled) audience member at full interest and fit
GMV_PRICE_SD = 0.6  # width of the price fit, in log price
#: The documented GMV model's constants (written to the truth folder).
GMV_MODEL: dict[str, object] = {
    "formula": "orders = K * A * I[c] * skill * exp(-(log(price) - P)^2 / (2 * price_sd^2))"
    " * noise; gmv = orders * price",
    "K": GMV_K,
    "price_sd": GMV_PRICE_SD,
    "noise_sd": 0.3,
    "A": "real (non-bot) followers extrapolated to the platform population",
    "I": "mean latent interest of the talent's real followers in the product's category",
    "P": "mean latent log-price preference of the talent's real followers",
}

START = date(2025, 1, 1)
DAYS = 546  # to 2026-06-30: the market's history window
DATES = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
#: The platform's calendar: (name, first day, last day), in date order. The history runs to
#: 2026-06-30; the campaigns after it are the coming ones plans and bookings are for.
CALENDAR = (
    ("Spring Festival Goods 2025", "2025-01-13", "2025-01-26"),
    ("38 Women's Day 2025", "2025-03-01", "2025-03-08"),
    ("618 Mid-Year 2025", "2025-05-20", "2025-06-18"),
    ("Double 11 2025", "2025-10-20", "2025-11-11"),
    ("Double 12 2025", "2025-12-01", "2025-12-12"),
    ("Spring Festival Goods 2026", "2026-02-01", "2026-02-14"),
    ("38 Women's Day 2026", "2026-03-01", "2026-03-08"),
    ("618 Mid-Year 2026", "2026-05-20", "2026-06-18"),
    ("Summer Sale 2026", "2026-07-10", "2026-07-20"),
    ("Back to School 2026", "2026-08-20", "2026-09-05"),
    ("Mid-Autumn 2026", "2026-09-15", "2026-09-25"),
    ("Double 11 2026", "2026-10-20", "2026-11-11"),
    ("Double 12 2026", "2026-12-01", "2026-12-12"),
)
#: Yearly growth of the market's activity, and its months (January first) relative to an
#: average one: the February lull of the Spring Festival, the 618 and Double 11 peaks.
MARKET_GROWTH = 0.35
SEASON = (1.0, 0.7, 1.0, 0.95, 1.05, 1.3, 0.9, 0.9, 1.0, 1.05, 1.6, 1.2)
#: Activity inside a campaign's window, relative to the same day outside one.
CAMPAIGN_LIFT = 1.5


def activity_by_day(
    camp_start: NDArray[np.int64], camp_end: NDArray[np.int64]
) -> NDArray[np.float64]:
    """The share of the history's sales and engagement on each of its :data:`DAYS` days.

    Growth (:data:`MARKET_GROWTH` a year), the month's season (:data:`SEASON`) and the lift of
    campaign windows (:data:`CAMPAIGN_LIFT`): what a growth forecast and the FACT split
    measure themselves against (kolmatch/matching/growth.py).

    Examples
    --------
    >>> p = activity_by_day(np.array([304]), np.array([314]))  # Double 11 2025
    >>> round(float(p.sum()), 6), bool(p[310] > 1.4 * p[290])
    (1.0, True)
    """
    days = np.arange(DAYS)
    month = np.array([(START + timedelta(days=int(d))).month - 1 for d in days])
    level = (1 + MARKET_GROWTH) ** (days / 365.0) * np.array(SEASON)[month]
    inside = np.zeros(DAYS, dtype=bool)
    for a, b in zip(camp_start, camp_end, strict=True):
        inside[max(a, 0) : max(min(b + 1, DAYS), 0)] = True
    level = level * np.where(inside, CAMPAIGN_LIFT, 1.0)
    out: NDArray[np.float64] = level / level.sum()
    return out


#: Share of merchants with a live room of their own (FACT's Field).
LIVE_ROOM_SHARE = 0.7
#: Range of a live room's fatigue: a month's viewers per session fall as sessions^-fatigue
#: (the room's own followers tire of it), so the month's GMV grows as sessions^(1-fatigue).
LIVE_FATIGUE = (0.2, 0.55)
#: Service providers' kinds; the first ones move GMV, logistics and customer service barely.
PROVIDER_KINDS = ("logistics", "operations", "ads", "live-studio", "customer-service")
PROVIDER_KIND_WEIGHT = (0.3, 1.0, 1.0, 1.0, 0.3)

#: Expected competitors per merchant among merchants of its main category.
COMPETITORS_PER_MERCHANT = 4.0
#: A talent's list price (public quote) is its negotiated fee / a discount drawn per talent,
#: uniform in this range: merchants pay 60-90% of the quote (docs/data-format.md).
LIST_PRICE_DISCOUNT = (0.6, 0.9)
GENDERS = np.array(["f", "m", "u"])
AGE_BANDS = np.array(["18-23", "24-30", "31-40", "41-50", "50+"])
AGE_LOG_PRICE_SHIFT = np.array([-0.4, -0.1, 0.15, 0.25, 0.1])


def oracle_orders(
    audience: FloatArray,
    interest: FloatArray,
    skill: FloatArray,
    log_price_pref: FloatArray,
    price: float,
) -> FloatArray:
    """Expected orders of a collaboration under the documented GMV model (noise mean 1).

    Parameters
    ----------
    audience, interest, skill, log_price_pref
        Per talent: real audience (platform-scaled), audience interest in the
        product's category, latent skill, audience mean log-price preference.
    price
        The product's price.

    Examples
    --------
    >>> import numpy as np
    >>> float(oracle_orders(np.array([1e5]), np.array([0.5]), np.array([1.0]),
    ...                     np.array([np.log(100.0)]), 100.0)[0])
    200.0
    """
    fit = np.exp(-((np.log(price) - log_price_pref) ** 2) / (2 * GMV_PRICE_SD**2))
    return GMV_K * audience * interest * skill * fit  # type: ignore[no-any-return]


class _Interrupts:
    """Ctrl-C for a generation: the first one stops it, and none leaves half a folder.

    While :meth:`installed`, SIGINT raises KeyboardInterrupt as Python's own handler does, and
    also sets :attr:`pending`, which :meth:`check` (called before every block of rows is
    written) turns into KeyboardInterrupt again: a first Ctrl-C was sometimes lost while the
    user rows were formatted (tests/test_cli_fuzz.py: the exception raised where C code
    dropped it, as an interpreter does one raised in a finaliser), and then the generation ran
    to its end. Once :meth:`defer` is called (the folders are being removed or renamed into
    place) further SIGINTs are only recorded, so a second Ctrl-C cannot cut the clean-up short
    and leave a hidden half-written folder; one recorded then is raised when the handler is
    restored. Inert outside the main thread or under a handler other than Python's default
    (``SIG_IGN`` in a background job stays ignored).
    """

    def __init__(self) -> None:
        self.pending = False
        self.deferred = False

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.pending = True
        if not self.deferred:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT as above within the block, if Python's default handler is in place."""
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.pending:  # pressed while the finished folders were renamed into place
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a Ctrl-C came and was not acted on."""
        if self.pending and not self.deferred:
            raise KeyboardInterrupt

    def defer(self) -> None:
        """From now on a Ctrl-C is recorded, not raised (for the clean-up or the renames)."""
        self.deferred = True


class _Writer:
    """Open CSV files of the import format, written row block by row block."""

    def __init__(self, out: Path, stack: ExitStack, interrupts: _Interrupts) -> None:
        self.out = out
        self.stack = stack
        self.interrupts = interrupts
        self.files: dict[str, IO[str]] = {}

    def header(self, name: str, columns: str) -> None:
        fh = self.stack.enter_context(
            (self.out / f"{name}.csv").open("w", encoding="utf-8", newline="\n")
        )
        fh.write(columns + "\n")
        self.files[name] = fh

    def rows(self, name: str, lines: list[str] | Iterator[str]) -> None:
        self.interrupts.check()
        text = "\n".join(lines)
        if text:
            self.files[name].write(text + "\n")


def _pick(rng: np.random.Generator, cum: FloatArray, n: int) -> IntArray:
    """Sample n indices from a cumulative distribution (last value 1)."""
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)


def _cum(w: FloatArray) -> FloatArray:
    c = np.cumsum(w)
    return c / c[-1]  # type: ignore[no-any-return]


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def generate_market(
    scale: str | MarketScale,
    seed: int,
    out: str | Path,
    truth_dir: str | Path | None = None,
    *,
    progress: bool = False,
) -> Path:
    """Write a synthetic market to ``out`` and its latent truth to ``truth_dir``.

    Users are generated in chunks and written as they are made, so memory stays
    bounded by the number of talents, products and contents, not users.

    Both folders are written whole: the files go to a hidden folder beside each and it is
    renamed into place once complete, so an error or an interrupt (Ctrl-C) leaves ``out`` and
    the truth folder as they were. A folder already there is replaced (``kolmatch generate``
    refuses a non-empty one unless ``--force``).

    Parameters
    ----------
    scale
        ``tiny``, ``s``, ``m``, ``l`` or a :class:`MarketScale`.
    seed
        The same seed writes the same files, byte for byte; a whole number, 0 or more.
    out
        Folder for the import files (created).
    truth_dir
        Folder for the latent truth; default ``<out>-truth``.
    progress
        Report progress (:mod:`kolmatch.progress`: users and collaborations of their totals,
        on a terminal or as ``KOLMATCH_PROGRESS`` says); False reports nothing.

    Returns
    -------
    Path
        The truth folder.

    Raises
    ------
    BadArgument
        If ``scale`` is unknown, ``seed`` negative or not a whole number, ``out`` or
        ``truth_dir`` a file, or one folder inside the other; nothing is written.
    """
    if isinstance(scale, str) and scale not in SCALES:
        raise BadArgument("scale", f"unknown scale {scale!r}; scales are {', '.join(SCALES)}")
    sc = SCALES[scale] if isinstance(scale, str) else scale
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise BadArgument("seed", f"must be a whole number, 0 or more, got {seed!r}")
    out = Path(out)
    if out.name in ("", ".", ".."):  # a name is needed for the truth folder and the staging
        out = out.resolve()
    truth = Path(truth_dir) if truth_dir else out.with_name(out.name + "-truth")
    for name, folder in (("out", out), ("truth_dir", truth)):
        if folder.exists() and not folder.is_dir():
            raise BadArgument(name, f"{folder} is a file, not a folder")
    a, b = out.resolve(), truth.resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise BadArgument("truth_dir", f"{truth} and {out} must be separate folders")
    interrupts = _Interrupts()
    # the files close (the ExitStack) before either folder is renamed into place
    with (
        nullcontext() if progress else silenced(),
        interrupts.installed(),
        _written_whole(out, interrupts) as out_part,
        _written_whole(truth, interrupts) as truth_part,
        ExitStack() as stack,
    ):
        _Market(sc, int(seed), _Writer(out_part, stack, interrupts), truth_part).run()
    return truth


@contextmanager
def _written_whole(folder: Path, interrupts: _Interrupts) -> Iterator[Path]:
    """A hidden folder beside ``folder`` to write into, renamed to ``folder`` on success.

    On any exception (KeyboardInterrupt too) it is removed, with the parents it created, and
    ``folder`` is untouched. A ``folder`` already there is renamed aside before the new one
    takes its name, then deleted: there is always a complete folder or none under the name.
    From the clean-up or the renames on, Ctrl-C waits for them (``interrupts``).
    """
    made = [p for p in folder.parents if not p.exists()]  # nearest first
    folder.parent.mkdir(parents=True, exist_ok=True)
    part = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.partial")
    part.mkdir()
    try:
        yield part
        interrupts.check()  # one a C call swallowed: before anything is published
    except BaseException:
        interrupts.defer()
        shutil.rmtree(part, ignore_errors=True)
        for p in made:
            try:
                p.rmdir()
            except OSError:
                break
        raise
    interrupts.defer()
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(folder, old)
    os.replace(part, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _Market:
    def __init__(self, sc: MarketScale, seed: int, w: _Writer, truth: Path) -> None:
        self.sc, self.seed, self.w, self.truth = sc, seed, w, truth
        self.C = sc.categories
        self.ext = PLATFORM_USERS / sc.users  # one generated user stands for this many

    def days(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        """``n`` days of the history, drawn by the market's activity (trend and season)."""
        return np.minimum(np.searchsorted(self.day_cum, rng.random(n)), DAYS - 1).astype(np.int64)

    def rng(self, *stage: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *stage])

    def run(self) -> None:
        self.categories()
        self.merchants_and_products()
        self.talents()
        self.contents()
        self.agencies_and_providers()
        self.campaigns()
        self.live_rooms()
        self.engagements()
        self.users()
        self.collaborations()
        self.competition_and_bookings()
        self.violations()
        self.write_truth()

    # -- supply side -------------------------------------------------------
    def categories(self) -> None:
        rng = self.rng(1)
        C = self.C
        self.cat_pop = rng.dirichlet(np.full(C, 3.0))
        self.cat_log_price = CATEGORY_LOG_PRICE[:C]
        self.w.header("category", "id,name")
        self.w.rows("category", (f"cat{c:02d},{CATEGORY_NAMES[c]}" for c in range(C)))

    def merchants_and_products(self) -> None:
        rng = self.rng(2)
        M, C = self.sc.merchants, self.C
        n_cat = rng.integers(1, 4, M)
        self.merchant_cats = [rng.choice(C, size=k, replace=False, p=self.cat_pop) for k in n_cat]
        self.merchant_price_level = rng.normal(0.0, 0.35, M)
        self.merchant_pop = rng.pareto(1.5, M) + 1.0
        n_prod = np.clip(rng.poisson(9, M), 2, 40)
        prod_merchant = np.repeat(np.arange(M), n_prod)
        P = len(prod_merchant)
        prod_cat = np.array([rng.choice(self.merchant_cats[m]) for m in prod_merchant])
        log_price = (
            self.cat_log_price[prod_cat]
            + self.merchant_price_level[prod_merchant]
            + rng.normal(0, 0.3, P)
        )
        self.prod_merchant, self.prod_cat = prod_merchant, prod_cat
        self.prod_price = np.round(np.exp(log_price), 2)
        self.prod_commission = np.round(rng.uniform(0.05, 0.3, P), 2)
        self.prod_start = np.concatenate([[0], np.cumsum(n_prod)[:-1]])
        self.prod_count = n_prod
        # products per category, weighted by merchant popularity, for purchases
        self.cat_products = [np.nonzero(prod_cat == c)[0] for c in range(C)]
        self.cat_prod_cum = [
            _cum(self.merchant_pop[prod_merchant[ix]]) if len(ix) else np.ones(1)
            for ix in self.cat_products
        ]
        w = self.w
        w.header(
            "merchant",
            "id,name,target_gender,target_age_band,budget,min_talents,max_talents,room_followers",
        )
        tg = rng.choice(np.array(["", "f", "m"]), M, p=[0.5, 0.35, 0.15])
        ta = np.where(rng.random(M) < 0.5, "", AGE_BANDS[rng.integers(0, 5, M)])
        budget = np.round(np.exp(rng.normal(np.log(150_000), 0.8, M)), -2)
        mn = rng.integers(1, 4, M)
        mx = mn + rng.integers(2, 12, M)
        # the merchant's own live room (Field), drawn from its own stream so nothing else moves
        room = self.rng(2, 1)
        self.room = room.random(M) < LIVE_ROOM_SHARE
        self.room_followers = np.where(
            self.room,
            np.round(self.merchant_pop * np.exp(room.normal(np.log(30_000), 0.8, M)), -1),
            0,
        ).astype(np.int64)
        rf = [str(f) if self.room[m] else "" for m, f in enumerate(self.room_followers)]
        w.rows(
            "merchant",
            (
                f"m{m},Merchant {m},{tg[m]},{ta[m]},{budget[m]:.0f},{mn[m]},{mx[m]},{rf[m]}"
                for m in range(M)
            ),
        )
        self.merchant_budget = budget
        w.header("product", "id,name,price,commission_rate")
        w.rows(
            "product",
            (
                f"p{p},{CATEGORY_NAMES[prod_cat[p]]} item {p},"
                f"{self.prod_price[p]:.2f},{self.prod_commission[p]:.2f}"
                for p in range(P)
            ),
        )
        w.header("sells", "src,dst")
        w.rows("sells", (f"m{prod_merchant[p]},p{p}" for p in range(P)))
        w.header("in_category", "src,dst")
        w.rows("in_category", (f"p{p},cat{prod_cat[p]:02d}" for p in range(P)))

    def talents(self) -> None:
        rng = self.rng(3)
        T, C = self.sc.talents, self.C
        primary = rng.choice(C, T, p=self.cat_pop)
        secondary = rng.choice(C, T, p=self.cat_pop)
        prof = np.zeros((T, C))
        prof[np.arange(T), primary] += 0.75
        prof[np.arange(T), secondary] += 0.25
        self.talent_profile = prof
        self.talent_primary = primary
        self.attract = rng.pareto(1.1, T) + 1.0
        self.skill = np.exp(rng.normal(0.0, 0.5, T))
        self.inflated = rng.random(T) < 0.05
        # P(talent | category) for follows and discovery
        self.cat_talent_cum = np.stack([_cum(self.attract * prof[:, c] + 1e-12) for c in range(C)])

    def contents(self) -> None:
        rng = self.rng(4)
        T = self.sc.talents
        n = np.clip(rng.poisson(4 + 3 * np.log1p(self.attract)), 2, 60)
        self.content_talent = np.repeat(np.arange(T), n)
        self.content_start = np.concatenate([[0], np.cumsum(n)[:-1]])
        self.content_count = n
        K = len(self.content_talent)
        # content features a product of the talent's primary category (60%) or none
        cat = self.talent_primary[self.content_talent]
        feat = np.full(K, -1)
        has = rng.random(K) < 0.6
        for c in range(self.C):
            ix = np.nonzero(has & (cat == c))[0]
            if len(ix) and len(self.cat_products[c]):
                feat[ix] = self.cat_products[c][_pick(rng, self.cat_prod_cum[c], len(ix))]
        self.content_product = feat
        kind = np.where(rng.random(K) < 0.2, "live", "video")
        day = rng.integers(0, DAYS, K)
        dur = np.where(kind == "live", rng.integers(1800, 14400, K), rng.integers(8, 300, K))
        w = self.w
        w.header("content", "id,kind,published,duration_s")
        w.rows("content", (f"v{k},{kind[k]},{DATES[day[k]]},{dur[k]}" for k in range(K)))
        w.header("published", "src,dst")
        w.rows("published", (f"t{self.content_talent[k]},v{k}" for k in range(K)))
        w.header("features", "src,dst")
        w.rows("features", (f"v{k},p{feat[k]}" for k in np.nonzero(feat >= 0)[0]))

    def agencies_and_providers(self) -> None:
        rng = self.rng(5)
        T, M = self.sc.talents, self.sc.merchants
        A = max(3, T // 25)
        w = self.w
        w.header("institution", "id,name")
        w.rows("institution", (f"a{a},Agency {a}" for a in range(A)))
        size = _cum(rng.pareto(1.3, A) + 1.0)
        signed = np.nonzero(rng.random(T) < 0.6)[0]
        agency = _pick(rng, size, len(signed))
        since = rng.integers(0, DAYS, len(signed))
        w.header("signed_with", "src,dst,since")
        w.rows(
            "signed_with", (f"t{t},a{agency[i]},{DATES[since[i]]}" for i, t in enumerate(signed))
        )
        S = max(5, M // 20)
        kinds = np.array(PROVIDER_KINDS)
        self.provider_kind = np.arange(S) % len(PROVIDER_KINDS)
        # a public quote for 30 days of service, from its own stream
        price = np.round(np.exp(self.rng(5, 1).normal(np.log(20_000), 0.5, S)), -2)
        self.provider_price = price
        w.header("service_provider", "id,name,kind,list_price")
        w.rows(
            "service_provider",
            (f"sp{s},Provider {s},{kinds[s % 5]},{price[s]:.0f}" for s in range(S)),
        )
        w.header("served_by", "src,dst")
        lines = []
        self.served_pairs: list[tuple[int, int]] = []
        for m in range(M):
            for s in sorted(set(rng.integers(0, S, rng.integers(1, 4)).tolist())):
                lines.append(f"m{m},sp{s}")
                self.served_pairs.append((m, s))
        w.rows("served_by", lines)

    def campaigns(self) -> None:
        """The platform's calendar (:data:`CALENDAR`), past and coming, and who joined what;
        then the market's activity by day (:func:`activity_by_day`) that sales follow."""
        rng = self.rng(6)
        M = self.sc.merchants
        n = len(CALENDAR)
        self.camp_start = np.array([(date.fromisoformat(a) - START).days for _, a, _ in CALENDAR])
        self.camp_end = np.array([(date.fromisoformat(b) - START).days for _, _, b in CALENDAR])
        w = self.w
        # briefs: a goal, a target and a budget that grow with the market and the event
        brief = self.rng(61)
        goals = [
            "gmv" if "Double" in nm or "618" in nm else "new_customers" for nm, _, _ in CALENDAR
        ]
        scale = M / 200.0  # the s market has 200 merchants
        targets = [
            round(float(brief.uniform(2e6, 8e6) * scale), -4)
            if g == "gmv"
            else float(round(brief.uniform(2e3, 1e4) * scale))
            for g in goals
        ]
        budgets = [round(float(brief.uniform(2e5, 1e6) * scale), -3) for _ in CALENDAR]
        w.header("campaign", "id,name,start,end,goal,kpi_target,budget")
        w.rows(
            "campaign",
            (
                f"cp{i},{name},{a},{b},{goals[i]},{targets[i]:.0f},{budgets[i]:.0f}"
                for i, (name, a, b) in enumerate(CALENDAR)
            ),
        )
        self.camp_cats = [
            sorted(set(brief.integers(0, self.C, brief.integers(2, 5)).tolist())) for _ in CALENDAR
        ]
        w.header("covers", "src,dst")
        w.rows(
            "covers", (f"cp{i},cat{c:02d}" for i, cats in enumerate(self.camp_cats) for c in cats)
        )
        self.day_cum = np.cumsum(activity_by_day(self.camp_start, self.camp_end))
        self.merchant_campaigns = [
            sorted(set(rng.integers(0, n, rng.integers(0, 4)).tolist())) for _ in range(M)
        ]
        w.header("joined", "src,dst")
        w.rows("joined", (f"m{m},cp{c}" for m in range(M) for c in self.merchant_campaigns[m]))
        # each joined merchant puts up to three of its products in the brief's categories
        lines = []
        for m in range(M):
            prods = np.arange(self.prod_start[m], self.prod_start[m] + self.prod_count[m])
            for c in self.merchant_campaigns[m]:
                fit = prods[np.isin(self.prod_cat[prods], self.camp_cats[c])]
                for p in fit[:3]:
                    lines.append(f"p{p},cp{c}")
        w.header("in_campaign", "src,dst")
        w.rows("in_campaign", lines)

    def activity(self, a: int, b: int) -> float:
        """The market's activity over days ``a..b-1`` (clipped to the history), in average days."""
        a, b = max(a, 0), min(b, DAYS)
        if b <= a:
            return 0.0
        lo = self.day_cum[a - 1] if a > 0 else 0.0
        return float(self.day_cum[b - 1] - lo) * DAYS

    def live_rooms(self) -> None:
        """Each room's sessions by month: viewers from its followers, tiring as sessions^-fatigue
        within a month and following the market's activity; orders and GMV from a conversion
        and the merchant's prices; a cost per session (hosts, crew, traffic)."""
        rng = self.rng(10)
        M = self.sc.merchants
        reach = rng.uniform(0.03, 0.10, M)
        fatigue = rng.uniform(*LIVE_FATIGUE, M)
        conversion = rng.uniform(0.003, 0.015, M)
        session_cost = np.exp(rng.normal(np.log(4_000), 0.4, M))
        rate = rng.uniform(1, 12, M)
        price = np.array(
            [
                float(
                    self.prod_price[
                        self.prod_start[m] : self.prod_start[m] + self.prod_count[m]
                    ].mean()
                )
                for m in range(M)
            ]
        )
        month_start = [d for d in range(DAYS) if (START + timedelta(days=d)).day == 1]
        bounds = list(zip(month_start, [*month_start[1:], DAYS], strict=True))
        w = self.w
        w.header("live_session", "id,day,duration_s,viewers,orders,gmv,cost")
        w.header("hosted", "src,dst")
        k = 0
        for m in np.nonzero(self.room)[0]:
            sessions, hosted = [], []
            for a, b in bounds:
                n = int(rng.poisson(rate[m] * (b - a) / 30.0))
                if n == 0:
                    continue
                level = self.activity(a, b) / (b - a)  # the month's activity per average day
                days = np.sort(rng.integers(a, b, n))
                mean = self.room_followers[m] * reach[m] * n ** -fatigue[m] * level
                viewers = rng.poisson(mean * np.exp(rng.normal(-0.03, 0.25, n)))
                orders = rng.poisson(viewers * conversion[m])
                gmv = orders * price[m] * np.exp(rng.normal(0, 0.2, n))
                cost = session_cost[m] * np.exp(rng.normal(0, 0.15, n))
                dur = rng.integers(3_600, 14_400, n)
                for j in range(n):
                    sessions.append(
                        f"ls{k},{DATES[days[j]]},{dur[j]},{viewers[j]},{orders[j]},"
                        f"{gmv[j]:.2f},{cost[j]:.0f}"
                    )
                    hosted.append(f"m{m},ls{k}")
                    k += 1
            w.rows("live_session", sessions)
            w.rows("hosted", hosted)
        self.live_truth: dict[str, Any] = {
            "room": self.room,
            "followers": self.room_followers,
            "reach": reach,
            "fatigue": fatigue,
            "conversion": conversion,
            "session_cost": session_cost,
            "price": price,
            "rate": rate,
        }

    def engagements(self) -> None:
        """Merchants' engagements of service providers: past ones with their outcome (the
        merchant's GMV before and during, moved by the provider's skill in the merchant's main
        category and the market's activity), and the running ones (served_by) without it.
        Merchants chose providers by popularity, not skill."""
        rng = self.rng(11)
        M, C = self.sc.merchants, self.C
        S = len(self.provider_price)
        weight = np.array(PROVIDER_KIND_WEIGHT)[self.provider_kind]
        skill = rng.normal(0.02, 0.04, (S, C))
        for s in range(S):
            special = rng.choice(C, size=int(rng.integers(1, 4)), replace=False, p=self.cat_pop)
            skill[s, special] += rng.uniform(0.10, 0.35, len(special))
        skill *= weight[:, None]
        popular = _cum(rng.pareto(1.2, S) + 1.0)
        base = self.merchant_pop * 2_000 * np.exp(rng.normal(0, 0.5, M))  # GMV per active day
        main = np.array([c[0] for c in self.merchant_cats])
        w = self.w
        w.header("engaged", "src,dst,engagement_id,start,end,fee,gmv_before,gmv_during")
        lines, e = [], 0
        for m in range(M):
            for s in _pick(rng, popular, int(rng.poisson(1.5))):
                dur = int(rng.integers(60, 181))
                start = int(rng.integers(dur, DAYS - dur))
                before = base[m] * self.activity(start - dur, start) * np.exp(rng.normal(0, 0.1))
                during = (
                    base[m]
                    * self.activity(start, start + dur)
                    * np.exp(skill[s, main[m]] + rng.normal(0, 0.1))
                )
                fee = self.provider_price[s] * dur / 30.0 * np.exp(rng.normal(0, 0.1))
                lines.append(
                    f"m{m},sp{s},e{e},{DATES[start]},{DATES[start + dur - 1]},{fee:.0f},"
                    f"{before:.2f},{during:.2f}"
                )
                e += 1
        for m, s in self.served_pairs:  # running: no outcome yet
            start = DAYS - int(rng.integers(20, 120))
            dur = int(rng.integers(90, 240))
            before = base[m] * self.activity(start - dur, start) * np.exp(rng.normal(0, 0.1))
            end = (START + timedelta(days=start + dur - 1)).isoformat()
            fee = self.provider_price[s] * dur / 30.0 * np.exp(rng.normal(0, 0.1))
            lines.append(f"m{m},sp{s},e{e},{DATES[start]},{end},{fee:.0f},{before:.2f},")
            e += 1
        w.rows("engaged", lines)
        self.provider_truth: dict[str, Any] = {
            "skill": skill,
            "kind": self.provider_kind,
            "popularity": np.diff(popular, prepend=0.0),
        }

    # -- demand side, streamed in chunks of users --------------------------
    def users(self) -> None:
        sc, C, T = self.sc, self.C, self.sc.talents
        w = self.w
        w.header("user", "id,gender,age_band,city_tier")
        w.header("follows", "src,dst,since")
        w.header("engaged_with", "src,dst,views,likes,comments,shares,watch_s,last")
        w.header("purchased", "src,dst,order_id,amount,time,talent,content")
        self.aud_n = np.zeros(T)
        self.aud_bots = np.zeros(T)
        self.aud_interest = np.zeros((T, C))
        self.aud_price = np.zeros(T)
        self.n_orders = 0
        interest_path = self.truth / "user_interest.npy"
        self.interest_mm = np.lib.format.open_memmap(
            interest_path, mode="w+", dtype=np.float32, shape=(sc.users, C)
        )
        self.user_is_bot = np.zeros(sc.users, dtype=bool)
        self.user_log_price = np.zeros(sc.users, dtype=np.float32)
        with task("generating users", sc.users, unit="users") as shown:
            for i, lo in enumerate(range(0, sc.users, sc.chunk)):
                self.user_chunk(i, lo, min(lo + sc.chunk, sc.users), shown)
        self.interest_mm.flush()
        del self.interest_mm

    def user_chunk(self, i: int, lo: int, hi: int, shown: Task) -> None:
        """Users ``lo:hi`` and their follows, engagement and purchases; ``shown`` advances a
        third of the chunk after each part (a chunk is all the users at s)."""
        rng = self.rng(100, i)
        n, C, w = hi - lo, self.C, self.w
        uid = np.arange(lo, hi)
        theta = rng.dirichlet(INTEREST_CONCENTRATION * (0.25 + 2.0 * self.cat_pop), n)
        gender = rng.choice(3, n, p=[0.55, 0.4, 0.05])
        age = rng.choice(5, n, p=[0.2, 0.3, 0.27, 0.15, 0.08])
        city = rng.choice(5, n, p=[0.1, 0.2, 0.3, 0.25, 0.15]) + 1
        # price preference: the interest-weighted category price, shifted by age and person
        logp = theta @ self.cat_log_price + AGE_LOG_PRICE_SHIFT[age] + rng.normal(0, 0.3, n)
        activity = np.exp(rng.normal(0, 0.6, n))
        bot = rng.random(n) < 0.03
        self.interest_mm[lo:hi] = theta.astype(np.float32)
        self.user_is_bot[lo:hi] = bot
        self.user_log_price[lo:hi] = logp
        w.rows(
            "user",
            (f"u{uid[j]},{GENDERS[gender[j]]},{AGE_BANDS[age[j]]},{city[j]}" for j in range(n)),
        )
        # follows: real users by interest; bots follow inflated talents
        k = np.where(bot, rng.integers(10, 40, n), 1 + rng.poisson(7 * activity))
        fu = np.repeat(np.arange(n), k)
        ft = self.interest_talents(rng, theta, fu)
        inflated = np.nonzero(self.inflated)[0]
        if len(inflated):
            b = bot[fu]
            ft[b] = inflated[rng.integers(0, len(inflated), int(b.sum()))]
        pair = np.unique(fu * self.sc.talents + ft)
        fu, ft = pair // self.sc.talents, pair % self.sc.talents
        since = rng.integers(0, DAYS, len(fu))
        w.rows("follows", (f"u{lo + fu[j]},t{ft[j]},{DATES[since[j]]}" for j in range(len(fu))))
        real = ~bot[fu]
        self.aud_n += np.bincount(ft[real], minlength=self.sc.talents)
        self.aud_bots += np.bincount(ft[~real], minlength=self.sc.talents)
        for c in range(C):
            self.aud_interest[:, c] += np.bincount(
                ft[real], weights=theta[fu[real], c], minlength=self.sc.talents
            )
        self.aud_price += np.bincount(ft[real], weights=logp[fu[real]], minlength=self.sc.talents)
        shown.advance(n / 3)
        # engagement: 70% with followed talents' content, 30% discovery by interest
        m = np.where(bot, 0, 1 + rng.poisson(6.5 * activity))
        eu = np.repeat(np.arange(n), m)
        et = self.interest_talents(rng, theta, eu)
        follow_start = np.searchsorted(fu, np.arange(n))
        follow_n = np.bincount(fu, minlength=n)
        use_follow = (rng.random(len(eu)) < 0.7) & (follow_n[eu] > 0)
        pick = follow_start[eu] + (rng.random(len(eu)) * np.maximum(follow_n[eu], 1)).astype(int)
        et = np.where(use_follow, ft[np.minimum(pick, len(ft) - 1)] if len(ft) else et, et)
        ec = self.content_start[et] + (rng.random(len(eu)) * self.content_count[et]).astype(int)
        pair = np.unique(eu * len(self.content_talent) + ec)
        eu, ec = pair // len(self.content_talent), pair % len(self.content_talent)
        et = self.content_talent[ec]
        cat = self.talent_primary[et]
        fit = theta[eu, cat] * C
        E = len(eu)
        views = 1 + rng.poisson(1 + fit)
        likes = rng.binomial(views, np.clip(0.15 * fit, 0, 0.9))
        comments = rng.binomial(views, np.clip(0.03 * fit, 0, 0.5))
        shares = rng.binomial(views, np.clip(0.02 * fit, 0, 0.5))
        watch = views * rng.uniform(5, 60, E) * np.clip(fit, 0.2, 3)
        last = self.days(rng, E)
        w.rows(
            "engaged_with",
            (
                f"u{lo + eu[j]},v{ec[j]},{views[j]},{likes[j]},{comments[j]},{shares[j]},"
                f"{watch[j]:.1f},{DATES[last[j]]}"
                for j in range(E)
            ),
        )
        shown.advance(n / 3)
        # content-driven purchases: engagement with content that features a product
        prod = self.content_product[ec]
        has = prod >= 0
        pcat = self.prod_cat[np.maximum(prod, 0)]
        pfit = np.exp(-((np.log(self.prod_price[np.maximum(prod, 0)]) - logp[eu]) ** 2) / 0.72)
        p_buy = np.clip(0.08 * theta[eu, pcat] * C * self.skill[et] * pfit, 0, 0.6)
        buy = has & (rng.random(E) < p_buy)
        rows = []
        for j in np.nonzero(buy)[0]:
            p = prod[j]
            rows.append((lo + eu[j], p, self.prod_price[p], last[j], f"t{et[j]}", f"v{ec[j]}"))
        # organic purchases by interest and price
        o = np.where(bot, 0, rng.poisson(1.2 * activity))
        ou = np.repeat(np.arange(n), o)
        oc = _pick_rows(rng, theta[ou])
        for c in range(C):
            ix = np.nonzero(oc == c)[0]
            if not len(ix) or not len(self.cat_products[c]):
                continue
            cand = self.cat_products[c][_pick(rng, self.cat_prod_cum[c], len(ix))]
            fitp = np.exp(-((np.log(self.prod_price[cand]) - logp[ou[ix]]) ** 2) / 0.72)
            keep = rng.random(len(ix)) < fitp
            days = self.days(rng, len(ix))
            for j, p, d in zip(ou[ix][keep], cand[keep], days[keep], strict=True):
                rows.append((lo + j, p, self.prod_price[p], d, "", ""))
        rows.sort(key=lambda r: (r[0], r[3], r[1]))
        qty = rng.integers(1, 3, len(rows))
        base = self.n_orders
        self.n_orders += len(rows)
        w.rows(
            "purchased",
            (
                f"u{r[0]},p{r[1]},o{base + j},{r[2] * qty[j]:.2f},{DATES[r[3]]},{r[4]},{r[5]}"
                for j, r in enumerate(rows)
            ),
        )
        shown.advance(n - 2 * (n / 3))

    def interest_talents(
        self, rng: np.random.Generator, theta: FloatArray, rows: IntArray
    ) -> IntArray:
        """For each entry of ``rows`` (a user in the chunk), a talent picked by its interests."""
        cats = _pick_rows(rng, theta[rows])
        out = np.zeros(len(rows), dtype=np.int64)
        for c in range(self.C):
            ix = np.nonzero(cats == c)[0]
            if len(ix):
                out[ix] = _pick(rng, self.cat_talent_cum[c], len(ix))
        return out

    # -- history -----------------------------------------------------------
    def talent_stats(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        n = np.maximum(self.aud_n, 1)
        interest = self.aud_interest / n[:, None]
        logp = np.where(self.aud_n > 0, self.aud_price / n, self.cat_log_price.mean())
        return self.aud_n * self.ext, interest, logp

    def collaborations(self) -> None:
        rng = self.rng(7)
        T, M = self.sc.talents, self.sc.merchants
        audience, interest, logp = self.talent_stats()
        followers = np.round((self.aud_n + self.aud_bots) * self.ext).astype(np.int64)
        fee = np.round(np.maximum(500, 0.1 * followers * np.exp(rng.normal(0, 0.3, T))), -1)
        self.talent_fee, self.talent_followers = fee, followers
        commission = np.round(rng.uniform(0.1, 0.3, T), 2)
        capacity = rng.integers(2, 9, T)
        regions = np.array(["East", "North", "South", "West", "Central"])
        region = regions[rng.integers(0, 5, T)]
        # the public quote (rate card) is above what merchants end up paying: fee / discount,
        # the discount drawn per talent from its own stream, so nothing else the seed draws moves
        self.talent_discount = self.rng(7, 1).uniform(*LIST_PRICE_DISCOUNT, T)
        list_price = np.round(fee / self.talent_discount, -1)
        w = self.w
        w.header("talent", "id,name,followers,fee,list_price,commission_rate,capacity,region")
        w.rows(
            "talent",
            (
                f"t{t},Talent {t},{followers[t]},{fee[t]:.0f},{list_price[t]:.0f},"
                f"{commission[t]:.2f},{capacity[t]},{region[t]}"
                for t in range(T)
            ),
        )
        w.header("promoted", "src,dst,collab_id,gmv,orders,fee,time,campaign")
        # merchants chose past partners the way the naive tools do: category match x popularity
        pop = np.log1p(followers.astype(np.float64))
        lines = []
        cid = 0
        with task("generating collaborations", M, unit="merchants") as shown:
            for m in range(M):
                if m % 500 == 0:  # ~0.1 s of merchants at l
                    shown.update(m)
                    w.interrupts.check()
                cats = self.merchant_cats[m]
                weight = self.talent_profile[:, cats].sum(axis=1) * pop + 0.05 * pop
                k = min(T, int(rng.integers(1, 12)))
                chosen = rng.choice(T, size=k, replace=False, p=weight / weight.sum())
                prods = np.arange(self.prod_start[m], self.prod_start[m] + self.prod_count[m])
                for t in np.sort(chosen):
                    p = int(rng.choice(prods))
                    c = self.prod_cat[p]
                    exp_orders = oracle_orders(
                        audience[t : t + 1],
                        interest[t : t + 1, c],
                        self.skill[t : t + 1],
                        logp[t : t + 1],
                        float(self.prod_price[p]),
                    )[0]
                    orders = int(rng.poisson(exp_orders * np.exp(rng.normal(-0.045, 0.3))))
                    gmv = orders * self.prod_price[p]
                    day = int(self.days(rng, 1)[0])
                    camp = ""
                    # collaborations ran in the campaigns that are over
                    mc = [c for c in self.merchant_campaigns[m] if self.camp_end[c] < DAYS]
                    if mc and rng.random() < 0.4:
                        ci = mc[int(rng.integers(0, len(mc)))]
                        camp = f"cp{ci}"
                        day = int(rng.integers(self.camp_start[ci], self.camp_end[ci] + 1))
                    paid = fee[t] * float(np.exp(rng.normal(0, 0.1)))
                    lines.append(
                        f"t{t},p{p},k{cid},{gmv:.2f},{orders},{paid:.0f},{DATES[day]},{camp}"
                    )
                    cid += 1
            w.rows("promoted", lines)

    def competition_and_bookings(self) -> None:
        """Competitors share a main category; bookings hold talents' slots in coming windows."""
        rng = self.rng(9)
        T, M = self.sc.talents, self.sc.merchants
        main = np.array([c[0] for c in self.merchant_cats])
        w = self.w
        w.header("competes_with", "src,dst,shared_categories")
        lines = []
        for c in range(self.C):
            group = np.nonzero(main == c)[0]
            if len(group) < 2:
                continue
            p = min(1.0, COMPETITORS_PER_MERCHANT / (len(group) - 1))
            a, b = np.triu_indices(len(group), 1)
            keep = rng.random(len(a)) < p
            for i, j in zip(a[keep], b[keep], strict=True):
                mi, mj = group[i], group[j]
                shared = len(set(self.merchant_cats[mi]) & set(self.merchant_cats[mj]))
                lines.append(f"m{mi},m{mj},{shared}")
        w.rows("competes_with", lines)
        # half the merchants have booked 1-4 talents, in their main category x popularity,
        # either in the coming month or in one of their campaigns' windows
        pop = np.log1p(self.talent_followers.astype(np.float64))
        w.header("booked", "src,dst,booking_id,start,end,campaign")
        lines, booking = [], 0
        for m in np.nonzero(rng.random(M) < 0.5)[0]:
            weight = self.talent_profile[:, main[m]] * pop + 0.05 * pop
            k = min(T, int(rng.integers(1, 5)))
            for t in np.sort(rng.choice(T, size=k, replace=False, p=weight / weight.sum())):
                # bookings hold slots in the coming campaigns
                mc = [c for c in self.merchant_campaigns[m] if self.camp_start[c] >= DAYS]
                if mc and rng.random() < 0.3:
                    ci = mc[int(rng.integers(0, len(mc)))]
                    start, end, camp = self.camp_start[ci], self.camp_end[ci], f"cp{ci}"
                else:
                    start = DAYS + int(rng.integers(0, 25))
                    end, camp = start + int(rng.integers(2, 14)), ""
                first, last = START + timedelta(days=int(start)), START + timedelta(days=int(end))
                lines.append(f"t{t},m{m},b{booking},{first.isoformat()},{last.isoformat()},{camp}")
                booking += 1
        w.rows("booked", lines)

    def violations(self) -> None:
        rng = self.rng(8)
        T, M, P = self.sc.talents, self.sc.merchants, len(self.prod_cat)
        kinds = {
            "Talent": ["false-advertising", "fake-engagement", "vulgar-content"],
            "Merchant": ["counterfeit", "late-shipping", "price-fraud"],
            "Product": ["illegal-product", "quality-failure", "mislabelled"],
        }
        severities = np.array(["minor", "major", "severe"])
        w = self.w
        w.header("violation", "id,kind,severity,time,resolved")
        w.header("has_violation", "src_label,src,dst")
        v = 0
        vrows, rrows = [], []
        for label, prefix, n, rate in (
            ("Talent", "t", T, 0.03),
            ("Merchant", "m", M, 0.03),
            ("Product", "p", P, 0.02),
        ):
            who = np.nonzero(rng.random(n) < rate)[0]
            if label == "Talent":  # bot-buying talents get caught more often
                who = np.union1d(who, np.nonzero(self.inflated & (rng.random(n) < 0.3))[0])
            for x in who:
                sev = severities[rng.choice(3, p=[0.6, 0.3, 0.1])]
                resolved = "true" if rng.random() < 0.5 else "false"
                kind = kinds[label][int(rng.integers(0, 3))]
                vrows.append(f"x{v},{kind},{sev},{DATES[int(rng.integers(0, DAYS))]},{resolved}")
                rrows.append(f"{label},{prefix}{x},x{v}")
                v += 1
        w.rows("violation", vrows)
        w.rows("has_violation", rrows)

    def write_truth(self) -> None:
        audience, interest, logp = self.talent_stats()
        np.savez(
            self.truth / "talents.npz",
            audience=audience,
            interest=interest,
            log_price=logp,
            skill=self.skill,
            inflated=self.inflated,
            bot_followers=self.aud_bots * self.ext,
            profile=self.talent_profile,
            # observable (talent.csv): lets an evaluation check the truth is the loaded market's
            followers=self.talent_followers,
        )
        np.savez(self.truth / "users.npz", is_bot=self.user_is_bot, log_price=self.user_log_price)
        np.savez(self.truth / "live_rooms.npz", **self.live_truth)
        np.savez(self.truth / "providers.npz", **self.provider_truth)
        np.savez(
            self.truth / "products.npz",
            category=self.prod_cat,
            price=self.prod_price,
            merchant=self.prod_merchant,
        )
        meta = {
            "scale": asdict(self.sc),
            "seed": self.seed,
            "model_version": MODEL_VERSION,
            "interest_concentration": INTEREST_CONCENTRATION,
            "platform_users": PLATFORM_USERS,
            "gmv_model": GMV_MODEL,
            "orders": self.n_orders,
            "note": "latent truth for evaluation only; the matcher never reads it",
        }
        (self.truth / "truth.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _pick_rows(rng: np.random.Generator, probs: FloatArray) -> IntArray:
    """One category per row of a row-stochastic matrix."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)  # type: ignore[no-any-return]
