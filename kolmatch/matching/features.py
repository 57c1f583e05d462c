"""Market features: the graph's projections turned once into the arrays every match query reads.

Everything here is observable data; the synthetic market's latent truth is never read.

The heavy stages are partitioned (docs/scale.md): the per-user stage over contiguous user
ranges (:mod:`kolmatch.matching.user_partition`), the category PPR tails over category chunks
(:mod:`kolmatch.matching.ppr_partition`), each a pure function of its part and a broadcast
value, mapped by a :class:`~kolmatch.matching.partition.PartitionMap` (this process by default,
a Dask cluster from the engine) and reduced here in part order. The rest (PageRank, track
records, skill, merchants, compliance) is talent- or merchant-sized or iterative over the whole
graph, and runs here on the reduced arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch import progress
from kolmatch.errors import StoreError, UnknownId
from kolmatch.graph.market import MarketGraph
from kolmatch.graph.model import AGE_BANDS, GENDERS
from kolmatch.graph.projection import EdgeList, NodeTable, to_csr
from kolmatch.matching.categories import (
    primary_category,
    product_category_weights,
    talent_categories,
)
from kolmatch.matching.centrality import bipartite_pagerank
from kolmatch.matching.eligibility import (
    AGENCY_PENALTY,
    agency_flagged,
    agency_note,
    agency_violation_share,
    excludes,
    fake_engagement_factor,
    is_fake_engagement,
)
from kolmatch.matching.partition import PartitionMap, drained, in_process, run_positions
from kolmatch.matching.ppr_partition import partitioned_ppr_tails
from kolmatch.matching.user_partition import (
    USER_PARTITION_ROWS,
    UserPart,
    UserShared,
    UserStage,
    choice_index,
    columns_spread,
    edges_from_rows,
    pattern_of,
    rows_normalised,
    rows_replaced,
    rows_spread,
    rows_with_entries_in,
    summed_anew,
    user_interest_in_rows,
    user_parts,
    user_stage,
    user_stage_changed,
)

__all__ = [
    "Calibration",
    "ContentJoin",
    "MarketFeatures",
    "Walks",
    "booking_columns",
    "build_features",
    "campaign_columns",
    "content_chances",
    "content_skill_of",
    "features_after_delta",
    "features_with_users",
    "price_fit",
    "refresh_risk",
    "user_shared",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()  # day 0 of :func:`day_numbers`
SEVERITY = {"minor": 1.0, "major": 2.0, "severe": 3.0}


@dataclass(frozen=True, eq=False)
class Calibration:
    """What a write would otherwise shift across the whole market: frozen between full builds.

    A recorded collaboration moves the market's conversion rate (every talent's expected
    orders), the category means every track record is shrunk toward, and the talent's category
    mix, which reaches every user who follows it, hence the interest mixes, the audiences of
    every talent sharing those users, their hidden needs and their expected orders (on the s
    market a median 470 of 2,000 talents share an audience user with a given one, 1,030 at the
    90th percentile). Built with a calibration, the features take these from it instead, so a
    write changes only the rows it touches (:mod:`kolmatch.matching.incremental`); a full
    build without one measures them afresh.

    The last three are what a talent's scores are measured against (docs/scoring.md,
    "Calibration"): the skills and track records every merchant's expected GMV, ROI and track
    record are standardised over, and the collaborations the partner walk reads. A recorded
    collaboration then moves its own talent's scores and no other's, so the ranked lists are
    patched rather than ranked again
    (:func:`~kolmatch.matching.score.rankings_after_collaboration`).
    """

    gmv_rate: float  # K-hat: observed orders per unit of expected orders, market-wide
    cat_mean: F64  # (C,) mean GMV per collaboration with known GMV: the track-record prior
    promoted_categories: sp.csr_matrix  # (T, C) promotions x product category weights
    skill: F64  # (T,) each talent's skill when measured: the reference of expected GMV's spread
    track: F64  # (T, C) track records when measured: what a track is a percentile among
    promotions: sp.csr_matrix  # (P, T) collaborations when measured: the partner walk's graph


@dataclass(frozen=True, eq=False)
class Walks:
    """The walks over the whole follow graph, kept between full builds by a delta.

    PageRank and the category PPR tails iterate over every user (at m the tails are ~60% of a
    build, and a warm start saves only ~25% of their sweeps), while a day's follows move them
    little: a delta (:func:`features_after_delta`) takes them from the features before it,
    and the next full build walks again.
    """

    influence: F64  # (T,) MarketFeatures.talent_influence
    category_ppr_tail: F64  # (C, T) MarketFeatures.category_ppr_tail


@dataclass
class MarketFeatures:
    """Arrays in explicit id order (``talent_ids``, ``merchant_ids``, ...), built once per graph.

    Shapes: T talents, M merchants, P products, U users, C categories.
    """

    talent_ids: NDArray[np.str_]
    user_ids: NDArray[np.str_]
    product_ids: NDArray[np.str_]
    merchant_ids: NDArray[np.str_]
    category_names: NDArray[np.object_]
    talent_fee: F64  # (T,) yuan per collaboration, NaN if unknown
    talent_list_price: F64  # (T,) the public quote per collaboration, NaN if none
    talent_followers: F64  # (T,) platform-reported followers
    talent_capacity: F64  # (T,)
    talent_audience: F64  # (T, C) interest mix of the talent's audience (leave-one-out)
    talent_audience_size: F64  # (T,) audience size: engaged users + FOLLOW_WEIGHT x other followers
    talent_audience_engaged: F64  # (T,) engaged users alone
    talent_active_share: F64  # (T,) share of followers that ever engaged (1 if not measured),
    # lowered by fake-engagement violations (docs/scoring.md, "Compliance")
    talent_active_share_measured: F64  # (T,) the same as measured, before violations
    talent_price_level: F64  # (T,) mean log price its audience pays
    talent_gender: F64  # (T, len(GENDERS)) gender mix of the audience (known genders)
    talent_age: F64  # (T, len(AGE_BANDS)) age-band mix of the audience
    merchant_target_gender: NDArray[np.int64]  # (M,) index into GENDERS, -1 if none stated
    merchant_target_age: NDArray[np.int64]  # (M,) index into AGE_BANDS, -1 if none stated
    talent_influence: F64  # (T,) PageRank on the user-talent follow graph, x T
    talent_track: F64  # (T, C) shrunk mean GMV per collaboration in each category
    talent_track_n: F64  # (T, C) collaborations in each category
    talent_track_gmv: F64  # (T, C) total GMV
    talent_track_merchants: F64  # (T, C) distinct merchants worked with
    talent_skill: F64  # (T,) observed orders / expected orders, shrunk to 1
    talent_hidden_need: F64  # (T, C) audience members leaning to c who bought nothing in c
    talent_risk: F64  # (T,) penalty in [0, 1]; 1 means excluded
    talent_risk_notes: list[list[str]]
    merchant_mix: F64  # (M, C) category mix of what the merchant sells (by sales, + catalogue)
    merchant_products: list[I64]
    merchant_risk: F64  # (M,)
    merchant_risk_notes: list[list[str]]
    product_risk: F64  # (P,) own violations only; 1 means excluded
    product_risk_notes: list[list[str]]
    user_interest: sp.csr_matrix  # (U, C) observed interest (engagement, follows, purchases)
    user_bought: sp.csr_matrix  # (U, C) spend per category
    audience: sp.csr_matrix  # (T, U) 1 where user u follows or engaged with talent t
    audience_by_user: sp.csr_matrix  # (U, T) audience weights: engaged 1, bare follow FOLLOW_WEIGHT
    category_ppr_tail: F64  # (C, T) personalised PageRank from each category's buyers, tail
    promotions: sp.csr_matrix  # (P, T) past collaborations per (product, talent)
    engagement_observed: bool  # the market holds engagement data (else quality is not measured)
    follows_observed: bool  # the market holds follows
    talent_engagement_rate: F64  # (T,) engagement weight per follower in the graph
    talent_category: F64  # (T, C) what its content features and it promoted, else its audience
    talent_category_source: NDArray[np.int8]  # (T,) 1 content/promotions, 2 audience, 0 none
    product_category: I64  # (P,) primary category (first by id among equals), -1 if none
    product_categories: F64  # (P, C) category weights: 1/k for each of k categories
    product_price: F64  # (P,)
    gmv_rate: float  # K-hat: observed orders per unit of expected orders, market-wide
    users: int
    today: date  # reference date: the latest engagement seen
    # -- what the optimisers need: budgets, slots, bookings, competitors, agencies --------
    talent_commission: F64  # (T,) share of GMV the talent takes, NaN if unknown
    talent_agency: I64  # (T,) row in agency_ids, -1 if unsigned
    agency_ids: NDArray[np.str_]
    merchant_budget: F64  # (M,) yuan per period for fees, NaN if unstated
    merchant_min_talents: F64  # (M,) NaN if unstated
    merchant_max_talents: F64  # (M,) NaN if unstated
    merchant_commission: F64  # (M,) mean commission its products offer talents
    merchant_buyers: sp.csr_matrix  # (M, U) 1 where u bought one of m's products
    competitors: sp.csr_matrix  # (M, M) symmetric, 1 where two merchants compete
    booking_talent: I64  # (B,) one row per booking
    booking_merchant: I64  # (B,)
    booking_start: I64  # (B,) date ordinals, inclusive
    booking_end: I64  # (B,)
    campaign_ids: NDArray[np.str_]
    campaign_start: I64  # (G,) date ordinals
    campaign_end: I64  # (G,)
    merchant_campaigns: sp.csr_matrix  # (M, G) 1 where the merchant joined the campaign
    # -- frozen calibration (:class:`Calibration`, with ``gmv_rate``) ------------------------
    category_gmv_mean: F64  # (C,) the prior each talent's track record is shrunk toward
    talent_promoted_categories: sp.csr_matrix  # (T, C) promotions' part of the category mix
    calibration_skill: F64  # (T,) Calibration.skill
    calibration_track: F64  # (T, C) Calibration.track
    calibration_promotions: sp.csr_matrix  # (P, T) Calibration.promotions
    # -- what a write updates a talent's rows from (:mod:`kolmatch.matching.incremental`) -----
    talent_track_known: F64  # (T, C) collaborations with known GMV in each category
    talent_orders_observed: F64  # (T,) orders of collaborations with known outcome
    talent_orders_expected: F64  # (T,) expected orders of the same (gmv_rate x reach)
    talent_content_skill: F64  # (T,) skill measured on the sales its content made
    #: what the content skill's expected sales are made of (:func:`content_chances`), kept for
    #: a delta to change by difference: chances of users with a price level of their own, priced
    talent_content_priced: F64  # (T,)
    #: ... and of users without one, by product, not yet priced (they take the market's level)
    talent_content_unpriced: sp.csr_matrix  # (T, P)
    talent_risk_own: F64  # (T,) risk of its own violations, at most 1
    talent_risk_agency: F64  # (T,) penalty from a flagged agency, 0 if none
    product_merchant: I64  # (P,) row of the merchant selling it, -1 if none
    product_log_price: F64  # (P,) log price as expected orders use it (1 yuan if unknown)

    @property
    def n_talents(self) -> int:
        return len(self.talent_ids)

    @property
    def calibration(self) -> Calibration:
        """The market-wide quantities these features were built with (:class:`Calibration`)."""
        return Calibration(
            self.gmv_rate,
            self.category_gmv_mean,
            self.talent_promoted_categories,
            self.calibration_skill,
            self.calibration_track,
            self.calibration_promotions,
        )

    @property
    def walks(self) -> Walks:
        """The walks these features hold (:class:`Walks`)."""
        return Walks(self.talent_influence, self.category_ppr_tail)

    def talent_row(self, talent_id: str) -> int:
        """Row of a talent id; :class:`UnknownId` if the graph has no such talent."""
        return _row(self.talent_ids, "Talent", talent_id)

    def product_row(self, product_id: str) -> int:
        """Row of a product id; :class:`UnknownId` if the graph has no such product."""
        return _row(self.product_ids, "Product", product_id)

    def merchant_row(self, merchant_id: str) -> int:
        """Row of a merchant id; :class:`UnknownId` if the graph has no such merchant."""
        return _row(self.merchant_ids, "Merchant", merchant_id)

    def campaign_row(self, campaign_id: str) -> int:
        """Row of a campaign id; :class:`UnknownId` if the graph has no such campaign."""
        return _row(self.campaign_ids, "Campaign", campaign_id)


def _row(ids: NDArray[np.str_], label: str, node_id: str) -> int:
    i = int(np.searchsorted(ids, node_id))
    if i >= len(ids) or ids[i] != node_id:
        raise UnknownId(label, node_id)
    return i


def build_features(
    g: MarketGraph,
    *,
    today: date | None = None,
    calibration: Calibration | None = None,
    walks: Walks | None = None,
    partitions: PartitionMap = in_process,
    user_partition_rows: int = USER_PARTITION_ROWS,
    release_user_edges: bool = False,
    keep_stage: Callable[[UserStage], None] | None = None,
) -> MarketFeatures:
    """Compute every signal's inputs from the market graph: a pure function of its arrays.

    Parameters
    ----------
    g
        The market read from the store (:func:`kolmatch.graph.market.read_market` with
        :data:`~kolmatch.graph.market.FEATURES_READ` or more).
    today
        The reference date for recency; default the latest date seen in engagement.
    calibration
        Market-wide quantities to take as given (those of earlier features,
        :attr:`MarketFeatures.calibration`) rather than measure from ``g``; default measure.
    walks
        PageRank and the category PPR tails to take as given (:attr:`MarketFeatures.walks`,
        as a delta does) rather than walk ``g``'s follow graph; default walk.
    partitions
        Where the partitioned stages run (the per-user stage in user ranges,
        :mod:`kolmatch.matching.user_partition`; the category PPR tails in category chunks,
        :mod:`kolmatch.matching.ppr_partition`): default this process, one part after another;
        the engine passes a Dask cluster's (:mod:`kolmatch.engine.distributed`). The rest,
        PageRank among it, runs here on the reduced arrays.
    user_partition_rows
        Users per partition. The features do not depend on where the partitions run; they
        depend on this only through the order of float sums (~1e-15 relative).
    release_user_edges
        The caller gives up ``g``'s engagement and follow edges (``ENGAGED_WITH`` and
        ``FOLLOWS`` from users): they are dropped from ``g`` once the per-user stage has read
        them (:meth:`~kolmatch.graph.market.MarketGraph.release`), not held to the end of the
        build. At m they are ~600 MiB of the ~2.5 GiB the build peaked at. The features are
        the same.
    keep_stage
        Called with the per-user stage once it is made, before the rest of the build lets
        its parts go (the engine keeps it for a delta: :mod:`kolmatch.engine.delta`); it must
        not change it.

    Returns
    -------
    MarketFeatures
        Carrying the calibration it was built with.

    Raises
    ------
    StoreError
        If ``calibration`` or ``walks`` is of a market with other talents or categories, or
        the graph has no talents or no categories (a partial import).
    BadArgument
        If ``user_partition_rows`` is not a positive whole number.
    """
    with progress.task("building features", sum(_STAGE_WEIGHTS)) as stage:
        return _build_features(
            g,
            today,
            calibration,
            walks,
            _Stages(stage),
            partitions,
            user_partition_rows,
            release_user_edges,
            keep_stage,
        )


#: The share (%) of a build each stage of :func:`_build_features` takes, in order: the progress
#: line's units. Measured on the s market (2 cores): the category PPR tails, last, are 62-73%.
_STAGE_WEIGHTS = (8, 7, 12, 8, 2, 1, 0, 62)


class _Stages:
    """Advances a progress task by each stage's weight as the build ends it."""

    def __init__(self, task: progress.Task) -> None:
        self.task, self.ended = task, 0

    def advance(self) -> None:
        self.task.advance(_STAGE_WEIGHTS[self.ended])
        self.ended += 1


def _build_features(
    g: MarketGraph,
    today: date | None,
    calibration: Calibration | None,
    walks: Walks | None,
    stage: _Stages,
    partitions: PartitionMap,
    user_partition_rows: int,
    release_user_edges: bool = False,
    keep_stage: Callable[[UserStage], None] | None = None,
) -> MarketFeatures:
    users, talents, categories = g.node("User"), g.node("Talent"), g.node("Category")
    T, C = len(talents), len(categories)
    missing = [x.label for x in (talents, categories) if not len(x)]
    if missing:  # a partial import: say what to load rather than fail deep in the arithmetic
        raise StoreError(
            f"the graph holds no {' and no '.join(missing)} nodes: load the rest of the market "
            "(docs/data-format.md) before matching"
        )
    P = len(g.node("Product"))
    if calibration is not None and (
        calibration.promoted_categories.shape != (T, C)
        or calibration.cat_mean.shape != (C,)
        or calibration.skill.shape != (T,)
        or calibration.track.shape != (T, C)
        or calibration.promotions.shape != (P, T)
    ):
        raise StoreError(
            f"the calibration is of another market ({calibration.promoted_categories.shape[0]} "
            f"talents, {len(calibration.cat_mean)} categories, "
            f"{calibration.promotions.shape[0]} products; the graph has {T}, {C} and {P})"
        )
    if walks is not None and (
        walks.influence.shape != (T,) or walks.category_ppr_tail.shape != (C, T)
    ):
        raise StoreError(
            f"the walks are of another market ({len(walks.influence)} talents, "
            f"{walks.category_ppr_tail.shape[0]} categories; the graph has {T} and {C})"
        )

    engaged_e = g.edge("ENGAGED_WITH", users.label)
    # the parts' rows: views of the edges, or (releasing) copies of what goes with the parts;
    # each part's engagement days parsed for it alone (the market's whole column of days,
    # and its known days for the latest, were 2 x 8 bytes an engagement held beside the
    # parts' copies: where the m build's heap peaked)
    parts = user_parts(g, user_partition_rows, own=release_user_edges)
    latest = max((_latest_day(p.last_day) for p in parts), default=-np.inf)
    ref = today or (
        date.fromordinal(_EPOCH_ORDINAL + int(latest)) if np.isfinite(latest) else date.today()
    )

    # per user (engagement strength, interest, spend, audience weights) in user partitions,
    # mapped by ``partitions`` and reduced in partition order (kolmatch.matching.user_partition)
    shared = user_shared(g, ref, calibration)
    if release_user_edges:
        # the parts hold what the user stage reads of these tables, and the rest of the build
        # the engagements' endpoints (content skill): the engagement counts and dates and the
        # follows go now, each part's copy of its rows as its block is made (``drained``)
        engaged_e = EdgeList(engaged_e.rel_type, users.label, engaged_e.src, engaged_e.dst, {})
        g.release(("ENGAGED_WITH", users.label), ("FOLLOWS", users.label))
    # (the stage passed on, not held here: the rest lets go of its largest parts early)
    endpoints = [engaged_e]  # handed over: no name here holds them to the end of the build
    del engaged_e
    us = [user_stage(drained(parts), shared, partitions)]
    if keep_stage is not None:
        keep_stage(us[0])
    return _features_of_stage(
        g,
        us.pop(),  # (handed over too)
        shared,
        endpoints,
        calibration,
        walks,
        stage,
        partitions,
    )


def _latest_day(days: F64) -> float:
    """The greatest of ``days`` that is known (not NaN); -inf if none is.

    Examples
    --------
    >>> _latest_day(np.array([3.0, np.nan, 7.0])), _latest_day(np.array([np.nan]))
    (7.0, -inf)
    """
    return float(np.fmax.reduce(days, initial=-np.inf))


def _features_of_stage(
    g: MarketGraph,
    us: UserStage,
    shared: UserShared,
    endpoints: list[EdgeList],
    calibration: Calibration | None,
    walks: Walks | None,
    stage: _Stages,
    partitions: PartitionMap,
    delta: _Delta | None = None,
) -> MarketFeatures:
    """The build after the per-user stage: everything else, from ``us`` and ``g``'s other
    tables. ``endpoints`` holds the engagements' endpoints (at least), taken out of it here so
    that they go after the content skill (~133 MB at m). Where the caller holds no other
    reference to ``us`` (a build), its largest per-user parts go as soon as read.
    ``delta``: the features before a delta and what it changed (:class:`_Delta`); what cannot
    have moved for the other users (their interest rows, their content chances) is taken from
    the features before."""
    users, talents, merchants = g.node("User"), g.node("Talent"), g.node("Merchant")
    products, categories, contents = g.node("Product"), g.node("Category"), g.node("Content")
    U, T, M, P, C, K = (len(x) for x in (users, talents, merchants, products, categories, contents))
    engaged_e = endpoints.pop()
    ref = shared.today
    pcat, log_price, talent_cat = shared.pcat, shared.log_price, shared.talent_cat
    product_cat = primary_category(pcat)
    price = products.columns["price"]
    published = g.edge("PUBLISHED", talents.label)
    features_e = g.edge("FEATURES", contents.label)
    promoted = g.edge("PROMOTED", talents.label)
    sells = g.edge("SELLS", merchants.label)
    purchased = g.edge("PURCHASED", users.label)
    user_bought, follows, user_interest = us.bought, us.follows, us.interest
    engaged_cat = us.engaged_cat  # (U, C): read below at most once, then let go
    taken = sp.csr_matrix((0, 0))
    us = replace(us, engaged_cat=taken, interest=taken)
    stage.advance()

    by_user = us.by_user  # (U, T)
    # (T, U) 1 where the user is in the talent's audience: by_user's pattern transposed (a
    # delta too: merging its users' columns into the audience before took as long, 0.13 s
    # against 0.12 s at m)
    audience_users = pattern_of(by_user).T.tocsr()
    audience_size = np.asarray(by_user.sum(axis=0)).ravel()
    talent_audience = us.talent_audience
    # a talent with no category of its own (no content, no promotion) takes its audience's
    talent_category, category_source = talent_categories(talent_cat, talent_audience)
    # a delta: the rows whose interest, purchases or audience can have moved (None: unknown)
    moved_rows = None
    mixed_before = delta is not None and (delta.before.talent_category_source == 2).any()
    if (category_source == 2).any():
        # whom a user follows says what it is into, through the followed talents' categories,
        # also those read from their audiences (else a follows-only market has no leaning user)
        del user_interest  # (not held beside its replacement: ~0.6 GiB at l)
        if delta is None:
            user_interest = user_interest_in_rows(
                engaged_cat, follows, talent_category, user_bought
            )
        else:
            user_interest, redo = _interest_after_delta(
                delta.before, delta.users, engaged_cat, follows, talent_category, user_bought
            )
            moved_rows = redo if mixed_before else None
    elif delta is not None and not mixed_before:  # (the stage's interest before and after)
        moved_rows = delta.users
    del engaged_cat
    # a user's price level: the mean log price over its orders (one order, one vote: weighting
    # by amount would lean every buyer toward its dearest purchases)
    user_logp = us.user_logp
    has_p = ~np.isnan(user_logp)
    # a talent's: the plain mean over its engaged users who bought (weighting by engagement
    # strength would lean it to its keenest fans, whose price level follows its own category)
    wsum = us.talent_price_n
    talent_price = np.divide(us.talent_price_sum, wsum, out=np.full(T, np.nan), where=wsum > 0)
    # a talent none of whose audience bought anything takes the market's mean; a market with no
    # purchase at all, the mean listed price (no data, no preference)
    if has_p.any():
        fill = float(user_logp[has_p].mean())
    else:
        fill = float(log_price.mean()) if log_price.size else 0.0
    talent_price = np.where(np.isnan(talent_price), fill, talent_price)
    # on a grid (1/1024 in log price, 0.1% of a price; the price fit's width is 0.6): a match
    # list's price fit is then one per grid level in use (~3,300 at l), not one per talent
    talent_price = np.round(talent_price * PRICE_LEVEL_GRID) / PRICE_LEVEL_GRID
    stage.advance()

    followers_graph = np.asarray(follows.sum(axis=0)).ravel()
    active = us.active  # followers who engaged
    # only where engagement is recorded at all can a follower be seen not to engage
    observed = us.engaged_entries > 0
    active_share = np.divide(
        active, followers_graph, out=np.ones(T), where=(followers_graph > 0) & observed
    )
    if walks is None:
        _, pagerank = bipartite_pagerank(follows)
        influence = pagerank * T
    else:
        influence = walks.influence
    stage.advance()

    # track record and skill: observed orders against what audience x interest x price predicts
    src, dst = promoted.src, promoted.dst
    # a collaboration whose outcome is not known (no GMV, e.g. a sponsored post) counts as
    # experience (n_tc) but not in the GMV means
    known = ~np.isnan(promoted.columns["gmv"])
    gmv = np.nan_to_num(promoted.columns["gmv"])
    orders = np.nan_to_num(promoted.columns["orders"])
    pc = product_cat[dst]
    ok = pc >= 0
    n_tc = np.zeros((T, C))
    g_tc = np.zeros((T, C))
    k_tc = np.zeros((T, C))
    np.add.at(n_tc, (src[ok], pc[ok]), 1.0)
    np.add.at(k_tc, (src[ok & known], pc[ok & known]), 1.0)
    np.add.at(g_tc, (src[ok], pc[ok]), gmv[ok])
    cat_mean = (
        np.divide(g_tc.sum(axis=0), k_tc.sum(axis=0), out=np.zeros(C), where=k_tc.sum(0) > 0)
        if calibration is None
        else calibration.cat_mean
    )
    track = (g_tc + TRACK_PRIOR * cat_mean) / (k_tc + TRACK_PRIOR)
    merch_of_product = _merchant_of_product(sells, P)
    tm = np.zeros((T, C))
    if len(src):
        pairs = np.unique(np.stack([src[ok], pc[ok], merch_of_product[dst[ok]]]), axis=1)
        np.add.at(tm, (pairs[0], pairs[1]), 1.0)
    reach_base = _expected_orders_base(
        audience_size[src],
        talent_audience[src, np.maximum(pc, 0)],
        talent_price[src],
        log_price[dst],
    )
    cal = ok & ~np.isnan(promoted.columns["orders"])  # outcomes known: calibrate on these
    total_base = reach_base[cal].sum()
    if calibration is not None:
        gmv_rate = calibration.gmv_rate
    else:
        gmv_rate = float(orders[cal].sum() / total_base) if total_base > 0 else 0.0
    exp_orders = np.zeros(T)
    obs_orders = np.zeros(T)
    np.add.at(exp_orders, src[cal], gmv_rate * reach_base[cal])
    np.add.at(obs_orders, src[cal], orders[cal])
    # shrunk toward 1: a prior worth SKILL_PRIOR_ORDERS expected orders (tuned on the s market)
    collab_skill = (obs_orders + SKILL_PRIOR_ORDERS) / (exp_orders + SKILL_PRIOR_ORDERS)
    attributed = _rows_of(talents, purchased.columns["talent"])
    sold_by = np.bincount(attributed[attributed >= 0], minlength=T).astype(np.float64)
    join = ContentJoin.of(published, features_e, product_cat, log_price, K)
    if delta is None or moved_rows is None:
        priced, unpriced = content_chances(
            engaged_e.src, engaged_e.dst, join, user_interest, user_logp, (T, P)
        )
    else:  # the users whose chances can have moved: theirs taken out and put in again
        priced, unpriced = _content_chances_after_delta(
            delta, moved_rows, engaged_e, join, user_interest, user_logp
        )
    del engaged_e  # (its endpoints: the last reference, when released from ``g``)
    content_skill = content_skill_of(sold_by, priced, unpriced, fill, log_price)
    skill = np.sqrt(collab_skill * content_skill)
    stage.advance()

    # merchants: what they sell and to whom
    merchant_products = _grouped(sells.src, sells.dst, M)
    sales = us.sales
    sold = sp.csr_matrix((sales[sells.dst] + 1.0, (sells.src, sells.dst)), shape=(M, P))
    mix = np.asarray((sold @ pcat).todense()).reshape(M, C)
    mix = mix / np.maximum(mix.sum(axis=1, keepdims=True), 1e-12)

    # hidden needs per category: users whose interest leans to c (share >= threshold) and
    # who have bought nothing in c -- new consumers for any merchant selling in c
    # (sparse: the dense (U, C) masks were 2 x 160 MiB at m; HIDDEN_NEED_INTEREST > 0, so
    # only stored entries can lean)
    if delta is None or moved_rows is None:
        lean_unbought = _lean_unbought(user_interest, user_bought)
        hidden_need = np.asarray((audience_users @ lean_unbought).todense()).reshape(T, C)
        del lean_unbought
    else:  # (counts of users: the difference is exact)
        hidden_need = _hidden_need_after_delta(
            delta.before, moved_rows, by_user, user_interest, user_bought
        )
    stage.advance()

    # shares of each talent's audience per gender and age band, among users whose value is
    # known (the counts summed over users in the per-user stage)
    gender_mix, age_mix = (_row_shares(x) for x in (us.gender_counts, us.age_counts))

    risk = _risk(g, merch_of_product, ref)
    stage.advance()
    agencies = g.node("Institution")
    signed = g.edge("SIGNED_WITH", talents.label)
    talent_agency = np.full(T, -1, dtype=np.int64)
    talent_agency[signed.src] = signed.dst
    competes = g.edge("COMPETES_WITH", merchants.label)
    ones = np.ones(2 * len(competes))
    competitors = sp.csr_matrix(
        (
            ones,
            (
                np.concatenate([competes.src, competes.dst]),
                np.concatenate([competes.dst, competes.src]),
            ),
        ),
        shape=(M, M),
    )
    competitors.data[:] = 1.0  # a pair listed both ways counts once
    commission = products.columns["commission_rate"]
    m_comm = np.zeros(M)
    m_n = np.zeros(M)
    has_c = ~np.isnan(commission[sells.dst])
    np.add.at(m_comm, sells.src[has_c], commission[sells.dst][has_c])
    np.add.at(m_n, sells.src[has_c], 1.0)
    buyers = us.merchant_buyers
    stage.advance()
    if walks is None:
        ppr_tail = partitioned_ppr_tails(by_user, sp.csr_matrix(user_bought > 0), partitions)
    else:
        ppr_tail = walks.category_ppr_tail
    stage.advance()
    promotions = sp.csr_matrix(to_csr(promoted, (T, P)).T)
    return MarketFeatures(
        talent_ids=talents.ids,
        user_ids=users.ids,
        product_ids=products.ids,
        merchant_ids=merchants.ids,
        category_names=categories.columns["name"],
        talent_fee=talents.columns["fee"],
        talent_list_price=talents.columns["list_price"],
        talent_followers=talents.columns["followers"],
        talent_capacity=talents.columns["capacity"],
        talent_audience=talent_audience,
        talent_audience_size=audience_size,
        talent_audience_engaged=us.engaged_users,
        **_risk_fields(risk, active_share),
        talent_price_level=talent_price,
        talent_influence=influence,
        talent_track=track,
        talent_track_n=n_tc,
        talent_track_gmv=g_tc,
        talent_track_merchants=tm,
        talent_skill=skill,
        talent_hidden_need=hidden_need,
        talent_gender=gender_mix,
        talent_age=age_mix,
        merchant_target_gender=choice_index(merchants.columns["target_gender"], GENDERS),
        merchant_target_age=choice_index(merchants.columns["target_age_band"], AGE_BANDS),
        merchant_mix=mix,
        merchant_products=merchant_products,
        user_interest=user_interest,
        user_bought=user_bought,
        audience=audience_users,
        audience_by_user=by_user,
        category_ppr_tail=ppr_tail,
        promotions=promotions,
        engagement_observed=observed,
        follows_observed=follows.nnz > 0,
        talent_engagement_rate=np.divide(
            us.engaged_sum,
            followers_graph,
            out=np.zeros(T),
            where=followers_graph > 0,
        ),
        talent_category=talent_category,
        talent_category_source=category_source,
        product_category=product_cat,
        product_categories=np.asarray(pcat.todense()).reshape(P, C),
        product_price=np.nan_to_num(price),
        gmv_rate=gmv_rate,
        users=U,
        today=ref,
        talent_commission=talents.columns["commission_rate"],
        talent_agency=talent_agency,
        agency_ids=agencies.ids,
        merchant_budget=merchants.columns["budget"],
        merchant_min_talents=merchants.columns["min_talents"],
        merchant_max_talents=merchants.columns["max_talents"],
        merchant_commission=np.divide(m_comm, m_n, out=np.zeros(M), where=m_n > 0),
        merchant_buyers=buyers,
        competitors=competitors,
        **booking_columns(g),
        **campaign_columns(g),
        category_gmv_mean=cat_mean,
        talent_promoted_categories=shared.promoted_cat,
        calibration_skill=skill if calibration is None else calibration.skill,
        calibration_track=track if calibration is None else calibration.track,
        calibration_promotions=promotions if calibration is None else calibration.promotions,
        talent_track_known=k_tc,
        talent_orders_observed=obs_orders,
        talent_orders_expected=exp_orders,
        talent_content_skill=content_skill,
        talent_content_priced=priced,
        talent_content_unpriced=unpriced,
        product_merchant=merch_of_product,
        product_log_price=log_price,
    )


def features_after_delta(
    g: MarketGraph,
    before: MarketFeatures,
    stage: UserStage,
    old: UserPart,
    new: UserPart,
) -> tuple[MarketFeatures, UserStage]:
    """The features after a delta of some users' rows (a day's follows and purchases), from
    the features and per-user stage before it and those users' rows before and after.

    The per-user stage is changed by difference (:func:`user_stage_changed`: the changed
    users alone); the rest of the build runs on it. What a delta does not measure afresh is
    taken from ``before``: its calibration, its walks (:class:`Walks`) and its reference date.
    So the result is :func:`build_features` of the market after the delta with those three
    given (field by field within 1e-9 relative), at a fraction of a build's time.

    Parameters
    ----------
    g
        The market after the delta, as :func:`build_features` reads it (its per-user edge
        lists are not read: the stage stands for them, except the engagements' endpoints and
        the purchases, which content skill reads).
    before
        The features before the delta.
    stage
        The per-user stage before the delta (:func:`~kolmatch.matching.user_partition.user_stage`
        with :func:`user_shared` of ``before``'s graph, date and calibration); kept whole.
    old, new
        The changed users' rows before and after (:func:`user_parts_of`), the same users:
        every user a row of the delta names (its follows, engagements, purchases, or its own
        gender or age band).

    Returns
    -------
    tuple of MarketFeatures and UserStage
        The features after the delta, and the stage after it (for the next delta).

    Raises
    ------
    StoreError
        If ``g`` holds other talents, users, products or categories than ``before``, or what
        every user's stage reads moved (content, a talent's own categories, a product's
        price, category or seller): a delta of those needs a build.
    ValueError
        If ``old`` and ``new`` are not parts of the same users, or ``stage`` was not made by
        :func:`~kolmatch.matching.user_partition.user_stage` (it names what it read).
    """
    for label, ids in (
        ("Talent", before.talent_ids),
        ("User", before.user_ids),
        ("Product", before.product_ids),
    ):
        if not np.array_equal(g.node(label).ids, ids):
            raise StoreError(f"the delta changes the {label} nodes: build the features anew")
    if len(g.node("Category")) != len(before.category_names):
        raise StoreError("the delta changes the Category nodes: build the features anew")
    if stage.shared is None:
        raise ValueError("the stage does not name what it was made with: make it by user_stage")
    shared = user_shared(g, before.today, before.calibration)
    moved = _shared_moved(stage.shared, shared)
    if moved:
        raise StoreError(
            f"the delta changes {moved}, which every user's stage reads: build the features anew"
        )
    with progress.task("applying a delta to the features", sum(_STAGE_WEIGHTS)) as task:
        changed = user_stage_changed(stage, old, new, shared)
        f = _features_of_stage(
            g,
            changed,
            shared,
            [g.edge("ENGAGED_WITH", "User")],
            before.calibration,
            before.walks,
            _Stages(task),
            in_process,
            _Delta(
                before,
                np.asarray(new.rows, dtype=np.int64),  # (checked by the stage)
                stage.user_logp,
                old.engaged_src,
                old.engaged_dst,
            ),
        )
    return f, changed


def features_with_users(
    before: MarketFeatures, user_ids: NDArray[np.str_], rows: I64
) -> MarketFeatures:
    """``before`` after users were added to the market (a load's sign-ups, ``user_ids`` the
    users now, in id order), the new ones without rows: its users at ``rows`` of them
    (:func:`~kolmatch.graph.market.read_nodes_into`). What :func:`features_after_delta`
    takes from the features before a delta that names the new users among its changed ones;
    the per-user arrays alone move (a user without rows adds nothing to a talent's or a
    merchant's figures).

    Raises
    ------
    ValueError
        If ``rows`` are not one increasing place among ``user_ids`` for each user before.
    """
    n = len(user_ids)
    rows = np.asarray(rows, dtype=np.int64)
    if (
        len(rows) != len(before.user_ids)
        or (len(rows) and (rows.min() < 0 or rows.max() >= n))
        or not np.array_equal(user_ids[rows], before.user_ids)
    ):
        raise ValueError("the users before must be at their rows among the users now")
    return replace(
        before,
        user_ids=user_ids,
        users=n,
        user_interest=rows_spread(before.user_interest, rows, n),
        user_bought=rows_spread(before.user_bought, rows, n),
        audience_by_user=rows_spread(before.audience_by_user, rows, n),
        audience=columns_spread(before.audience, rows, n),
        merchant_buyers=columns_spread(before.merchant_buyers, rows, n),
    )


def _shared_moved(was: UserShared, now: UserShared) -> str | None:
    """The first of what every part of the stage reads that differs, in words; None if none."""
    if was.today != now.today:
        return "the reference date"
    for name, what in (
        ("content_cat", "the content's categories"),
        ("content_talent", "who published the content"),
        ("talent_cat", "the talents' own categories"),
        ("pcat", "the products' categories"),
        ("log_price", "the products' prices"),
        ("product_merchant", "who sells the products"),
        ("promoted_cat", "the promotions' categories"),
        ("content_product", "the products the content features"),
    ):
        a, b = getattr(was, name), getattr(now, name)
        if sp.issparse(a):
            if a.shape != b.shape or (sp.csr_matrix(a) != sp.csr_matrix(b)).nnz:
                return what
        elif not np.array_equal(a, b, equal_nan=True):
            return what
    return None


def _interest_after_delta(
    before: MarketFeatures,
    users: I64,
    engaged_cat: sp.csr_matrix,
    follows: sp.csr_matrix,
    talent_category: F64,
    bought: sp.csr_matrix,
) -> tuple[sp.csr_matrix, I64]:
    """:func:`user_interest_in_rows` of the market after a delta, made again only for the rows
    that can have moved, and those rows: a row reads the user's own rows and its followed
    talents' category mixes, so the delta's ``users`` and the followers of a talent whose mix
    moved (one whose mix is its audience's). The others are ``before``'s rows (at m, 1.1 s for
    every user). (Where ``before`` had no talent of its audience's mix, its interest was the
    stage's, made with the talents' own mixes: those are its ``talent_category`` then.)"""
    moved = (talent_category != before.talent_category).any(axis=1)
    redo = np.union1d(users, rows_with_entries_in(follows, moved))
    block = user_interest_in_rows(engaged_cat[redo], follows[redo], talent_category, bought[redo])
    return rows_replaced(before.user_interest, redo, block), redo


def _lean_unbought(interest: sp.csr_matrix, bought: sp.csr_matrix) -> sp.csr_matrix:
    """1.0 where a user leans to a category (interest at least :data:`HIDDEN_NEED_INTEREST`)
    and has bought nothing in it."""
    lean = sp.csr_matrix(interest >= HIDDEN_NEED_INTEREST, dtype=np.float64)
    return lean - lean.multiply(sp.csr_matrix(bought > 0, dtype=np.float64))


def _hidden_need_after_delta(
    before: MarketFeatures,
    rows: I64,
    by_user: sp.csr_matrix,
    interest: sp.csr_matrix,
    bought: sp.csr_matrix,
) -> F64:
    """The (T, C) hidden needs after a delta that can have moved only the users at ``rows``
    (their interest, purchases or audience): ``before``'s with those users' terms taken out
    and their terms now put in. Counts of users, so the difference is exact."""
    was = pattern_of(before.audience_by_user[rows]).T @ _lean_unbought(
        before.user_interest[rows], before.user_bought[rows]
    )
    now = pattern_of(by_user[rows]).T @ _lean_unbought(interest[rows], bought[rows])
    return np.asarray(before.talent_hidden_need + (now - was).todense())


def user_shared(g: MarketGraph, today: date, calibration: Calibration | None = None) -> UserShared:
    """What every part of ``g``'s per-user stage reads beside its users' rows.

    Parameters
    ----------
    g
        The market (its Talent, Product, Category, Content and Merchant tables, and their
        IN_CATEGORY, PUBLISHED, FEATURES, PROMOTED and SELLS edges).
    today
        The reference date engagement's recency is counted to.
    calibration
        Whose promoted categories to take (as :func:`build_features` checked it); default
        measure them from ``g``'s promotions.

    Returns
    -------
    UserShared
    """
    talents, products, merchants = g.node("Talent"), g.node("Product"), g.node("Merchant")
    T, P, M = len(talents), len(products), len(merchants)
    K, C = len(g.node("Content")), len(g.node("Category"))
    pcat = product_category_weights(g.edge("IN_CATEGORY", products.label), P, C)
    log_price = np.log(np.maximum(np.nan_to_num(products.columns["price"], nan=1.0), 0.01))
    published = g.edge("PUBLISHED", talents.label)
    content_talent = sp.csr_matrix(
        (np.ones(len(published)), (published.dst, published.src)), shape=(K, T)
    )
    content_product = to_csr(g.edge("FEATURES", "Content"), (K, P))
    # a talent's categories: what its content features and what it has promoted (frozen in a
    # calibration: through the users who follow it, it reaches most of the market)
    promoted_cat = (
        sp.csr_matrix(to_csr(g.edge("PROMOTED", talents.label), (T, P)) @ pcat)
        if calibration is None
        else calibration.promoted_categories
    )
    talent_cat = rows_normalised(
        sp.csr_matrix(content_talent.T @ content_product @ pcat) + promoted_cat
    )
    # a content item's categories: its products, else its talent's mix
    content_cat = sp.csr_matrix(content_product @ pcat)
    no_cat = np.asarray(content_cat.sum(axis=1)).ravel() == 0
    content_cat = rows_normalised(
        content_cat + sp.diags(no_cat.astype(float)) @ (content_talent @ talent_cat)
    )
    sells = g.edge("SELLS", merchants.label)
    product_merchant = sp.csr_matrix((np.ones(len(sells)), (sells.dst, sells.src)), shape=(P, M))
    return UserShared(
        today,
        content_cat,
        content_talent,
        talent_cat,
        pcat,
        log_price,
        product_merchant,
        promoted_cat,
        content_product,
    )


def booking_columns(g: MarketGraph) -> dict[str, Any]:
    """The features' booking arrays (talent, merchant, first and last day) from a graph read
    with ``BOOKED``: the full build's and a booking write's (incremental.apply_bookings)."""
    booked = g.edge("BOOKED", "Talent")
    return {
        "booking_talent": booked.src,
        "booking_merchant": booked.dst,
        "booking_start": _ordinals(booked.columns["start"]),
        "booking_end": _ordinals(booked.columns["end"]),
    }


def campaign_columns(g: MarketGraph) -> dict[str, Any]:
    """The features' campaign arrays (ids, windows, who joined) from a graph read with
    ``Campaign`` and ``JOINED``: the full build's and a campaign write's
    (incremental.apply_campaigns)."""
    campaigns, joined = g.node("Campaign"), g.edge("JOINED", "Merchant")
    shape = (len(g.node("Merchant")), len(campaigns))
    return {
        "campaign_ids": campaigns.ids,
        "campaign_start": _ordinals(campaigns.columns["start"]),
        "campaign_end": _ordinals(campaigns.columns["end"]),
        "merchant_campaigns": sp.csr_matrix(
            (np.ones(len(joined)), (joined.src, joined.dst)), shape=shape
        ),
    }


def _ordinals(dates: NDArray[np.object_]) -> I64:
    return np.array([date.fromisoformat(d[:10]).toordinal() for d in dates], dtype=np.int64)


def _row_shares(counts: F64) -> F64:
    """Each row of ``counts`` divided by its sum (all-zero rows stay zero)."""
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)  # type: ignore[no-any-return]


#: A user has a hidden need in a category when this share of its observed interest is there
#: and it has bought nothing there yet.
HIDDEN_NEED_INTEREST = 0.25


def _rows_of(table: NodeTable, ids: NDArray[np.object_]) -> I64:
    """Rows of ``table`` of each of ``ids`` (text, or None/NaN for none: -1), by Arrow's
    ``index_in`` over Arrow text (~40 MB at m's 2.3M: looking them up as one numpy text array
    took ~180 MB of temporaries at the build's peak).

    Examples
    --------
    >>> t = NodeTable("Talent", np.array(["t1", "t2"], dtype=object), {})
    >>> _rows_of(t, np.array(["t2", None, "t9", "t2"], dtype=object)).tolist()
    [1, -1, -1, 1]
    """
    try:  # Arrow's hash join: ~0.2 s for m's 2.3M, where a lookup per id took ~1.1 s
        at = pc.index_in(
            pa.array(ids, type=pa.string(), from_pandas=True),
            value_set=pa.array(table.ids, type=pa.string()),
        )
        return np.asarray(at.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # an id that is not text: looked up one by one
        distinct = list(dict.fromkeys(ids.tolist()))
        rows = table.indices_of([x if isinstance(x, str) else "" for x in distinct])
        row_of = dict(zip(distinct, rows.tolist(), strict=True))
        return np.fromiter((row_of[x] for x in ids.tolist()), dtype=np.int64, count=len(ids))


def _grouped(keys: I64, values: I64, n: int) -> list[I64]:
    """``values`` by their ``keys`` (``0..n-1``): entry k holds the values whose key is k, in
    their order (one stable sort, where a pass over every value per key was O(n x values):
    50,000 merchants x 450,000 products at l).

    Examples
    --------
    >>> [v.tolist() for v in _grouped(np.array([1, 0, 1]), np.array([7, 8, 9]), 3)]
    [[8], [7, 9], []]
    """
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(1, n))
    return np.split(values[order], bounds) if n else []


class _Delta(NamedTuple):
    """What :func:`_features_of_stage` takes from before a delta: the features, the delta's
    users (market rows, sorted), their price levels before (NaN: none of their own) and their
    engagements before (market rows, contents)."""

    before: MarketFeatures
    users: I64
    old_logp: F64
    old_engaged_src: I64
    old_engaged_dst: I64


class ContentJoin(NamedTuple):
    """Which talent published each content and which products it features: what joins an
    engagement to its chances of a sale (:func:`content_chances`)."""

    content_talent: I64  # (contents,) talent row, -1 if none published it
    starts: I64  # (contents + 1,) content k's products are products[starts[k]:starts[k + 1]]
    products: I64  # product rows, by content
    product_cat: I64  # (products,) primary category row, -1 for none
    log_price: F64  # (products,) log price

    @classmethod
    def of(
        cls,
        published: EdgeList,
        features: EdgeList,
        product_cat: I64,
        log_price: F64,
        n_contents: int,
    ) -> ContentJoin:
        """The join of PUBLISHED (talent -> content) and FEATURES (content -> product) rows."""
        content_talent = np.full(n_contents, -1, dtype=np.int64)
        content_talent[published.dst] = published.src
        order = np.argsort(features.src, kind="stable")
        # (two gathers per engagement, where two binary searches over the features took ~1 s)
        starts = np.zeros(n_contents + 1, dtype=np.int64)
        np.cumsum(np.bincount(features.src, minlength=n_contents), out=starts[1:])
        return cls(content_talent, starts, features.dst[order], product_cat, log_price)


def content_chances(
    e_src: I64,
    e_dst: I64,
    join: ContentJoin,
    user_interest: sp.csr_matrix,
    user_logp: F64,
    shape: tuple[int, int],
) -> tuple[F64, sp.csr_matrix]:
    """The chances of a sale that engagements gave each talent's content, summed per talent.

    Every engagement with content that features a product is a chance to sell it: the user's
    interest in the product's category, times the price fit, shared equally among the
    products the content features. A user without a price level of its own (no purchase)
    takes the market's, which any purchase moves: so its chances are kept by product, not yet
    priced (:func:`content_skill_of` prices them), and a delta changes both sums by the terms
    of its users alone.

    Parameters
    ----------
    e_src, e_dst
        ENGAGED_WITH rows: user rows and content rows.
    join
        The contents' talents and products (:meth:`ContentJoin.of`).
    user_interest
        (users, categories) observed interest, rows sum to 1.
    user_logp
        (users,) price level, NaN for a user without one.
    shape
        (talents, products).

    Returns
    -------
    tuple of numpy.ndarray and scipy.sparse.csr_matrix
        (T,) the chances of users with a price level, priced; (T, P) those of users without,
        by product (no stored zeros).
    """
    priced = np.zeros(shape[0])
    unpriced = sp.csr_matrix(shape)
    # in chunks of engagements: the join's dozen row-sized temporaries were ~540 MiB at m
    for lo in range(0, len(e_src), CONTENT_SKILL_CHUNK):
        src = e_src[lo : lo + CONTENT_SKILL_CHUNK]
        dst = e_dst[lo : lo + CONTENT_SKILL_CHUNK]
        start = join.starts[dst]
        count = join.starts[dst + 1] - start
        rows = np.repeat(np.arange(len(dst)), count)
        product = join.products[run_positions(start, count)]
        user = src[rows]
        talent = join.content_talent[dst[rows]]
        cat = join.product_cat[product]
        ok = (talent >= 0) & (cat >= 0)
        user, talent, product, share = user[ok], talent[ok], product[ok], count[rows[ok]]
        if not len(user):  # (an empty fancy index of a sparse matrix is of objects)
            continue
        chance = np.asarray(user_interest[user, cat[ok]], dtype=np.float64).ravel() / share
        logp = user_logp[user]
        own = ~np.isnan(logp)
        chance[own] *= price_fit(logp[own], join.log_price[product[own]])
        priced += np.bincount(talent[own], weights=chance[own], minlength=shape[0])
        other = ~own
        unpriced = unpriced + sp.csr_matrix(
            (chance[other], (talent[other], product[other])), shape=shape
        )
    unpriced.eliminate_zeros()
    return priced, unpriced


def content_skill_of(
    observed: F64, priced: F64, unpriced: sp.csr_matrix, fill: float, log_price: F64
) -> F64:
    """Conversion skill from the sales a talent's content made: observed / expected, shrunk to 1.

    Expected: the content's chances (:func:`content_chances`), those of users without a price
    level priced at the market's ``fill``. Observed: purchases attributed to the talent. The
    market rate calibrates expected to observed overall; a prior worth
    :data:`CONTENT_SKILL_PRIOR` sales pulls a talent with few toward 1.

    Parameters
    ----------
    observed
        (T,) purchases attributed to each talent.
    priced, unpriced
        As :func:`content_chances` returns them.
    fill
        The price level of a user without one of its own.
    log_price
        (products,) log price.
    """
    expected: F64 = priced + unpriced @ price_fit(np.full(len(log_price), fill), log_price)
    total = expected.sum()
    rate = observed.sum() / total if total > 0 else 0.0
    skill: F64 = (observed + CONTENT_SKILL_PRIOR) / (rate * expected + CONTENT_SKILL_PRIOR)
    return skill


def _content_chances_after_delta(
    delta: _Delta,
    rows: I64,
    engaged: EdgeList,
    join: ContentJoin,
    user_interest: sp.csr_matrix,
    user_logp: F64,
) -> tuple[F64, sp.csr_matrix]:
    """:func:`content_chances` of the market after a delta that can have moved only the users
    at ``rows`` (sorted market rows, the delta's users among them: their interest, price
    level or engagements): the features' before with those users' chances taken out and put
    in again. Where a sum keeps no more than round-off of its terms, it is 0 (no entry), as in
    a build."""
    before = delta.before
    now = edges_from_rows(engaged.src, rows)
    src, dst = engaged.src[now], engaged.dst[now]
    # before, the other users of ``rows`` engaged as now; the delta's users as they did then
    kept = ~np.isin(src, delta.users, assume_unique=False)
    old_src = np.concatenate([src[kept], delta.old_engaged_src])
    old_dst = np.concatenate([dst[kept], delta.old_engaged_dst])
    old_logp = user_logp.copy()  # (only ``rows``' entries are read)
    old_logp[delta.users] = delta.old_logp[delta.users]
    shape = before.talent_content_unpriced.shape
    was = content_chances(old_src, old_dst, join, before.user_interest, old_logp, shape)
    back = content_chances(src, dst, join, user_interest, user_logp, shape)
    priced = summed_anew(before.talent_content_priced, was[0], back[0])
    unpriced = summed_anew(before.talent_content_unpriced, was[1], back[1])
    return priced, unpriced


#: Engagements joined with their contents' products at a time (the content skill's join).
CONTENT_SKILL_CHUNK = 1_000_000

#: Strength of the prior (in collaborations) that pulls a track record to its category's mean.
TRACK_PRIOR = 2.0
#: Strength of the prior that pulls a talent's estimated skill toward the market's 1.0.
SKILL_PRIOR_ORDERS = 30.0
#: The same for the skill measured on the sales a talent's content made (in sales).
CONTENT_SKILL_PRIOR = 10.0

#: Width of the price fit in log price (a default; callers of scoring may override).
PRICE_SD = 0.6

#: A talent's price level is rounded to a multiple of ``1 / PRICE_LEVEL_GRID`` in log price
#: (0.1% of a price, within 0.0005 of its mean; the price fit moves by at most 0.08%, 0.16%
#: and 0.25% for a product 1, 2 and 3 widths away): the levels in use are few (~3,300 at l
#: for 200,000 talents), and :func:`kolmatch.matching.score.expected_gmv` fits a merchant's
#: prices once per level.
PRICE_LEVEL_GRID = 1024


def price_fit(talent_logp: F64, logp: F64) -> F64:
    """How well a price suits an audience: a Gaussian in log price around what it pays.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(price_fit(np.log(100.0), np.log(100.0 * np.exp(PRICE_SD)))), 4)
    0.6065
    """
    # in place, the same bits as exp(-(d ** 2) / (2 sd^2)): one talents x products array, not four
    d = np.asarray(np.subtract(logp, talent_logp), dtype=np.float64)
    np.square(d, out=d)
    np.divide(d, -2 * PRICE_SD**2, out=d)
    return np.exp(d, out=d)


def _expected_orders_base(audience: F64, interest: F64, talent_logp: F64, logp: F64) -> F64:
    """Audience x interest x price fit: expected orders before the market rate and skill."""
    return audience * interest * price_fit(talent_logp, logp)


def _merchant_of_product(sells: EdgeList, n_products: int) -> I64:
    """Row of the merchant selling each product, -1 where none does."""
    out = np.full(n_products, -1, dtype=np.int64)
    out[sells.dst] = sells.src
    return out


def refresh_risk(g: MarketGraph, f: MarketFeatures) -> MarketFeatures:
    """``f`` with compliance recomputed from ``g``: all a flagged or resolved violation changes.

    Violations enter the features only through risk (talents', merchants', products', and what
    spills over from promoted products and merchants and from an agency's roster) and through
    the active share fake-engagement violations lower, so after writes that touched nothing but
    violations this equals :func:`build_features` and needs only the small tables of
    :data:`~kolmatch.graph.market.COMPLIANCE_READ`, not the engagement graph. The caller vouches
    that nothing else changed; a different set of talents, merchants, products or agencies is
    refused.

    Raises
    ------
    StoreError
        If ``g``'s talents, merchants, products or agencies are not the ones ``f`` was built from.
    """
    for what, label, ids in (
        ("talents", "Talent", f.talent_ids),
        ("merchants", "Merchant", f.merchant_ids),
        ("products", "Product", f.product_ids),
        ("agencies", "Institution", f.agency_ids),
    ):
        if not np.array_equal(g.node(label).ids, ids):
            raise StoreError(f"the store's {what} changed since these features were built")
    merch_of_product = _merchant_of_product(g.edge("SELLS", "Merchant"), len(f.product_ids))
    risk = _risk(g, merch_of_product, f.today)
    return replace(f, **_risk_fields(risk, f.talent_active_share_measured))


class _Risk(NamedTuple):
    """What violations put into the features (:func:`_risk`)."""

    talent: F64
    talent_own: F64  # (T,) of its own violations alone, at most 1
    talent_agency: F64  # (T,) from a flagged agency
    talent_notes: list[list[str]]
    merchant: F64
    merchant_notes: list[list[str]]
    product: F64
    product_notes: list[list[str]]
    active_share_factor: F64  # (T,) on the measured active share


def _risk_fields(risk: _Risk, active_share_measured: F64) -> dict[str, Any]:
    """The :class:`MarketFeatures` fields compliance sets: one list for the build and refresh."""
    return {
        "talent_risk": risk.talent,
        "talent_risk_own": risk.talent_own,
        "talent_risk_agency": risk.talent_agency,
        "talent_risk_notes": risk.talent_notes,
        "merchant_risk": risk.merchant,
        "merchant_risk_notes": risk.merchant_notes,
        "product_risk": risk.product,
        "product_risk_notes": risk.product_notes,
        "talent_active_share": active_share_measured * risk.active_share_factor,
        "talent_active_share_measured": active_share_measured,
    }


#: The start of the note a talent carries for the risk of what it promoted.
SPILL_NOTE = "promoted flagged products or merchants"
#: The start of the note a talent carries for fake-engagement violations.
FAKE_ENGAGEMENT_NOTE = "fake-engagement violations"


def spill_risk(product_or_merchant_risk: F64, count: F64) -> float:
    """A talent's risk from what it promoted: a quarter of the mean over its collaborations.

    Parameters
    ----------
    product_or_merchant_risk
        (n,) for each product it promoted, the larger of the product's and its merchant's risk.
    count
        (n,) how many times it promoted each.

    Examples
    --------
    >>> import numpy as np
    >>> spill_risk(np.array([1.0, 0.0]), np.array([1.0, 3.0]))
    0.0625
    """
    n = float(count.sum())
    return 0.25 * float((product_or_merchant_risk * count).sum()) / n if n > 0 else 0.0


def spill_note(spill: float) -> str:
    """The note of a talent's risk from what it promoted (:func:`spill_risk`)."""
    return f"{SPILL_NOTE} (risk {spill:.2f})"


def _risk(g: MarketGraph, merch_of_product: I64, today: date) -> _Risk:
    """Compliance: severe or unresolved violations exclude (1.0); minor, old ones penalise.

    Risk also propagates: a talent who promoted products or merchants with violations carries
    a share of theirs (a product nobody sells, no merchant's), and the talents of an agency
    whose roster keeps violating carry a share of its (:mod:`kolmatch.matching.eligibility`).
    Fake-engagement violations also lower the talent's active share (audience quality).
    """
    violations, promoted = g.node("Violation"), g.edge("PROMOTED", "Talent")
    talents, merchants, products = g.node("Talent"), g.node("Merchant"), g.node("Product")
    agencies, signed = g.node("Institution"), g.edge("SIGNED_WITH", "Talent")
    sev = np.array([SEVERITY.get(s or "", 1.0) for s in violations.columns["severity"]])
    resolved = np.nan_to_num(violations.columns["resolved"]) > 0
    kind = violations.columns["kind"]
    age = np.array(
        [(today - date.fromisoformat(t[:10])).days if t else 0 for t in violations.columns["time"]]
    )
    # a violation's weight: excluded (1) if severe or unresolved, else fading with age
    weight = np.where(
        excludes(violations.columns["severity"], resolved),
        1.0,
        0.15 * sev * np.power(0.5, np.maximum(age, 0) / 365),
    )
    out: dict[str, F64] = {}
    notes: dict[str, list[list[str]]] = {}
    for label, table in (("Talent", talents), ("Merchant", merchants), ("Product", products)):
        e = g.edge("HAS_VIOLATION", label)
        r = np.zeros(len(table))
        np.add.at(r, e.src, weight[e.dst])
        out[label] = np.minimum(r, 1.0)
        notes[label] = [[] for _ in range(len(table))]
        for s, d in zip(e.src, e.dst, strict=True):
            state = "resolved" if resolved[d] else "unresolved"
            what = f" {kind[d]}" if kind[d] else ""
            notes[label][s].append(
                f"{violations.columns['severity'][d]} {state}{what} violation "
                f"{violations.ids[d]} ({violations.columns['time'][d]})"
            )
    own = out["Talent"]
    t_notes = notes["Talent"]
    penalty = np.zeros(len(talents))
    # propagation: the mean risk of what the talent promoted, at a quarter weight
    if len(promoted):
        seller = merch_of_product[promoted.dst]
        pr = np.maximum(
            out["Product"][promoted.dst],
            np.where(seller >= 0, out["Merchant"][np.maximum(seller, 0)], 0.0),
        )
        acc = np.zeros(len(talents))
        cnt = np.zeros(len(talents))
        np.add.at(acc, promoted.src, pr)
        np.add.at(cnt, promoted.src, 1.0)
        spill = 0.25 * np.divide(acc, cnt, out=np.zeros_like(acc), where=cnt > 0)
        for t in np.nonzero(spill > 0)[0]:
            t_notes[t].append(spill_note(float(spill[t])))
        penalty += spill
    # an agency whose roster keeps violating: its talents share its excluded share
    from_agency = np.zeros(len(talents))
    agency = np.full(len(talents), -1, dtype=np.int64)
    agency[signed.src] = signed.dst
    share, bad, roster = agency_violation_share(own >= 1.0, agency, len(agencies))
    flagged = agency_flagged(share, bad)
    of_flagged = np.zeros(len(talents), dtype=bool)
    of_flagged[agency >= 0] = flagged[agency[agency >= 0]]
    for t in np.nonzero(of_flagged)[0]:
        a = int(agency[t])
        from_agency[t] = AGENCY_PENALTY * share[a]
        penalty[t] += from_agency[t]
        t_notes[t].append(agency_note(str(agencies.ids[a]), int(bad[a]), int(roster[a])))
    talent = np.where(own >= 1.0, 1.0, np.minimum(own + penalty, 0.99))
    # fake engagement: the measured active audience overstates the real one
    e = g.edge("HAS_VIOLATION", "Talent")
    fake = is_fake_engagement(kind)
    factor = fake_engagement_factor(
        e.src, fake[e.dst], resolved[e.dst], age[e.dst].astype(np.float64), len(talents)
    )
    for t in np.nonzero(factor < 1.0)[0]:
        t_notes[t].append(f"{FAKE_ENGAGEMENT_NOTE}: audience quality counted at {factor[t]:.0%}")
    return _Risk(
        talent,
        own,
        from_agency,
        t_notes,
        out["Merchant"],
        notes["Merchant"],
        out["Product"],
        notes["Product"],
        factor,
    )
