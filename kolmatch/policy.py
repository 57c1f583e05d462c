"""Who sees what: the one written policy (docs/api.md, "Policy") every output path obeys.

The GraphQL resolvers ask :func:`sees_private_talent_values`, :func:`sees_merchant_own` and
:func:`sees_collaboration`; the evidence writers (kolmatch/matching/score.py) and the command
line write match lists from :data:`MATCH_LIST_VALUES` only, so a match list is the same
whoever reads it and says nothing the merchant may not see.

Decisions (the reasons are in docs/api.md):

- a talent's **list price** (its public quote, as on Xingtu) is public; its negotiated
  ``fee``, its own ``commission_rate``, its ``capacity`` and its **bookings** are private
  (visible to the agency it is signed with and to internal tools);
- a collaboration's GMV, orders and fee are visible to the merchant whose product it
  promoted, the talent's agency and internal tools; everyone else sees a talent's track record
  only as a **percentile among talents** (:func:`percentile`, :func:`percentile_band`);
- a match list's ROI is computed from the list price (an estimate where none is quoted, marked
  so) and the commission the merchant's own products offer, never from private terms;
- audience demographics (gender, age band, and the share of an audience in a merchant's stated
  target) are shown only for audiences of at least :data:`MIN_DEMOGRAPHIC_AUDIENCE` members;
- a service provider's **engagements** (fee, the merchant's GMV before and during) are visible
  to that provider, the merchant engaged and internal tools (:func:`sees_provider_own`);
  everyone else sees a provider's track record only as aggregates over at least
  :data:`MIN_EVIDENCE_ENGAGEMENTS` engagements (an expected lift, the median lift in the
  merchant's categories: :data:`PROVIDER_LIST_VALUES`), and a provider sees of the merchants
  it could serve only their name, categories and its own expected lift.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MATCH_LIST_VALUES",
    "MIN_DEMOGRAPHIC_AUDIENCE",
    "MIN_EVIDENCE_ENGAGEMENTS",
    "PRIVATE_TALENT_VALUES",
    "PROVIDER_LEAD_VALUES",
    "PROVIDER_LIST_VALUES",
    "PUBLIC_TALENT_VALUES",
    "ROLES",
    "Viewer",
    "demographics_shown",
    "demographics_visible",
    "percentile",
    "percentile_among",
    "percentile_band",
    "sees_collaboration",
    "sees_merchant_own",
    "sees_private_talent_values",
    "sees_provider_own",
]

F64 = NDArray[np.float64]

#: Who asks: a merchant (its own key), an agency (MCN), a service provider or an internal tool.
ROLES = ("merchant", "agency", "provider", "internal")

#: Talent values anyone may see.
PUBLIC_TALENT_VALUES = (
    "name",
    "tier",
    "followers",
    "region",
    "list_price",
    "centrality",
    "audience",
    "agency",
    "risk",
    "risk_flags",
)
#: Talent values only its agency and internal tools may see.
PRIVATE_TALENT_VALUES = (
    "fee",
    "commission_rate",
    "capacity",
    "bookings",
    "collaborators",
    "recommended_merchants",
    "other_merchants_gmv",
)
#: What a match list (and "why not") may state, for every reader: it is written for the
#: merchant, whose view is the narrowest that may ask for one.
MATCH_LIST_VALUES = (
    "score (a weighted sum of the signals below, standardised)",
    "expected GMV per collaboration (the model's estimate)",
    "list price, or its estimate from list prices per follower (marked estimated)",
    "ROI = expected GMV / (price + the merchant's products' commission x expected GMV)",
    "track record as a percentile among talents in the merchant's categories",
    "counts of past collaborations and of merchants worked with",
    "audience: size, interest, quality, hidden needs, the merchant's own customers in it",
    "demographic target fit, for audiences of at least MIN_DEMOGRAPHIC_AUDIENCE members",
    "availability in a campaign window (yes or no, not slots or who booked them)",
    "affordability against the merchant's budget (from the price above)",
    "compliance flags (public)",
)

#: Fewest audience members (followers and engaged users in the graph) whose demographics are
#: shown: below it a share names too few people (k-anonymity; 100 is the smallest audience a
#: platform's audience insights commonly report on).
MIN_DEMOGRAPHIC_AUDIENCE = 100

#: Fewest engagements a figure built from merchants' outcomes with a service provider may stand
#: for (kolmatch/matching/providers.py): the same k-anonymity rule as
#: :data:`MIN_DEMOGRAPHIC_AUDIENCE`, counted in engagements (each a merchant's GMV) rather than
#: people. 5 is the threshold rule statistical offices apply to business figures (at least 3-5
#: contributors per cell); 100 engagements would hide every provider on the s market, where
#: the busiest has a few dozen.
MIN_EVIDENCE_ENGAGEMENTS = 5

#: What a merchant's list of service providers may state, for every reader.
PROVIDER_LIST_VALUES = (
    "provider: name, kind, list price per 30 days (public quote)",
    "expected lift for the merchant: a shrunk mean over all the provider's engagements, "
    "only for providers with at least MIN_EVIDENCE_ENGAGEMENTS completed ones (else its kind's)",
    "count of the provider's completed engagements, in all and in the merchant's categories",
    "median lift of those in the merchant's categories, when at least MIN_EVIDENCE_ENGAGEMENTS",
    "extra GMV per yuan of list price, from the merchant's own GMV (its own value)",
)
#: What a provider's leads may state of a merchant it does not serve.
PROVIDER_LEAD_VALUES = (
    "merchant: id, name, categories (public, as Merchant.name and Merchant.categories)",
    "the provider's own expected lift for it (from the provider's own engagements)",
)


class Viewer(Protocol):
    """Who a value is shown to: :class:`kolmatch.api.auth.Principal` is one."""

    @property
    def kind(self) -> str: ...

    @property
    def id(self) -> str | None: ...


def sees_private_talent_values(viewer: Viewer, talent_id: str, roster: Collection[str]) -> bool:
    """Whether the viewer may see a talent's :data:`PRIVATE_TALENT_VALUES`.

    Internal tools, and the agency the talent is signed with (``roster``: its talents).

    Examples
    --------
    >>> from kolmatch.api.auth import Principal
    >>> sees_private_talent_values(Principal("agency", "a1"), "t1", {"t1"})
    True
    >>> sees_private_talent_values(Principal("merchant", "m1"), "t1", {"t1"})
    False
    """
    if viewer.kind == "internal":
        return True
    return viewer.kind == "agency" and talent_id in roster


def sees_merchant_own(viewer: Viewer, merchant_id: str) -> bool:
    """Whether the viewer may see a merchant's own values: match lists, plans, "why not",
    customer aggregates. The merchant itself and internal tools.

    Examples
    --------
    >>> from kolmatch.api.auth import Principal
    >>> sees_merchant_own(Principal("merchant", "m1"), "m1"), sees_merchant_own(
    ...     Principal("merchant", "m2"), "m1"
    ... )
    (True, False)
    """
    return viewer.kind == "internal" or (viewer.kind == "merchant" and viewer.id == merchant_id)


def sees_provider_own(viewer: Viewer, provider_id: str) -> bool:
    """Whether the viewer may see a provider's own values: its engagements (fees and the
    merchants' GMV before and during) and its leads. The provider itself and internal tools.

    Examples
    --------
    >>> from kolmatch.api.auth import Principal
    >>> sees_provider_own(Principal("provider", "sp1"), "sp1"), sees_provider_own(
    ...     Principal("provider", "sp2"), "sp1"
    ... ), sees_provider_own(Principal("merchant", "sp1"), "sp1")
    (True, False, False)
    """
    return viewer.kind == "internal" or (viewer.kind == "provider" and viewer.id == provider_id)


def sees_collaboration(viewer: Viewer, merchant_id: str | None, talent_private: bool) -> bool:
    """Whether the viewer may see one collaboration's GMV, orders and fee.

    ``talent_private``: the viewer may see the talent's private values
    (:func:`sees_private_talent_values`). Otherwise only the merchant whose product it promoted.
    """
    if talent_private:
        return True
    return viewer.kind == "merchant" and merchant_id is not None and viewer.id == merchant_id


def demographics_visible(audience_members: int | float) -> bool:
    """Whether an audience is large enough to show its demographics.

    Examples
    --------
    >>> demographics_visible(99), demographics_visible(100)
    (False, True)
    """
    return bool(demographics_shown(np.asarray(audience_members)))


def demographics_shown(audience_members: NDArray[np.number]) -> NDArray[np.bool_]:
    """:func:`demographics_visible` of many audiences at once (one array comparison).

    Examples
    --------
    >>> demographics_shown(np.array([99, 100, 5000])).tolist()
    [False, True, True]
    """
    return np.asarray(audience_members) >= MIN_DEMOGRAPHIC_AUDIENCE


def percentile(values: F64, common: NDArray[np.bool_] | None = None) -> F64:
    """Each value's mid-rank percentile among all of them, 0..100 (equal values share one).

    For finite values (a NaN is a run of its own: NaNs' percentiles depend on the sort).

    What is shown instead of an amount that would reveal other merchants' GMV: only the
    order of talents, which a score with one weight set already shows.

    Parameters
    ----------
    values
        The values.
    common
        Optional mask of entries the caller expects to share one value (at l, the ~180,000
        of 200,000 talents with no track record in a merchant's categories, who all have
        the categories' mean): only the others are sorted. Checked, not trusted: if they
        differ, a value is not finite, or the mask is not of ``values``' shape, every value
        is sorted. The result is the same to the bit either way.

    Examples
    --------
    >>> percentile(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
    [12.5, 87.5, 50.0, 50.0]
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if not n:
        return np.zeros(0)
    if common is not None and common.any():
        shared = _percentile_beside_run(x, common)
        if shared is not None:
            return shared
    # one sort, then each run of equal values gets its mid-rank: at l (200,000 talents, once
    # per match list) 3 to 5x faster than two binary searches of every value. Not a stable
    # sort: equal (finite) values share their mid-rank whatever their order among themselves, and
    # numpy's default sort is ~4x the stable one's speed at m (20,000 talents, many of them
    # with no track record, hence equal values: 2.0 -> 0.5 ms)
    order = np.argsort(x)
    start, end = _runs(x[order])
    out = np.empty(n)
    out[order] = np.repeat((start + end) * (50.0 / n), end - start)
    return out


def percentile_among(values: F64, reference: F64, reference_percentile: F64 | None = None) -> F64:
    """Each value's mid-rank percentile among the ``reference`` values, 0..100: (how many are
    below it + how many are at or below it) x 50 / their number.

    A value equal to its reference (the same position) has the reference's own percentile
    (:func:`percentile`): a track record against the calibration's (docs/scoring.md), where
    only the talents recorded since move.

    Parameters
    ----------
    values
        The values; with ``reference_percentile``, one per reference value (else any number).
    reference
        The values they are placed among (finite).
    reference_percentile
        ``percentile(reference)``, when the caller holds it: returned itself if no value
        differs from its reference.

    Examples
    --------
    >>> ref = np.array([10.0, 30.0, 20.0, 20.0])
    >>> percentile_among(np.array([10.0, 30.0, 25.0, 20.0]), ref, percentile(ref)).tolist()
    [12.5, 87.5, 75.0, 50.0]
    >>> percentile_among(np.array([5.0, 20.0]), ref).tolist()
    [0.0, 50.0]
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(reference)
    if reference_percentile is None:
        if len(x) <= 8:  # a few talents (a ranking patched): a pass each, no sort
            below = np.array([int((reference < v).sum()) for v in x], dtype=np.int64)
            upto = np.array([int((reference <= v).sum()) for v in x], dtype=np.int64)
        else:
            s = np.sort(reference)
            below, upto = np.searchsorted(s, x, "left"), np.searchsorted(s, x, "right")
        return np.asarray((below + upto) * (50.0 / max(n, 1)), dtype=np.float64)
    moved = np.flatnonzero(x != reference)
    if not len(moved):
        return reference_percentile
    out = reference_percentile.copy()
    out[moved] = percentile_among(x[moved], reference)
    return out


def _runs(s: F64) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Where each run of equal values of the sorted, non-empty ``s`` starts and ends."""
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    start = np.flatnonzero(new)
    return start, np.append(start[1:], len(s))


def _percentile_beside_run(x: F64, common: NDArray[np.bool_]) -> F64 | None:
    """:func:`percentile` of ``x`` where every ``common`` entry has one value ``v``: the other
    values sorted, and ``v``'s run counted in where it falls. None if the ``common`` entries
    differ or a value is not finite (the caller sorts them all then)."""
    n = len(x)
    if np.shape(common) != x.shape:
        return None
    v = float(x[np.argmax(common)])
    rest = np.flatnonzero(~common)
    others = x[rest]
    # (masks and reductions over all of x, not a copy of the common entries: ~1 ms at l)
    if not (math.isfinite(v) and not (common & (x != v)).any() and np.isfinite(others).all()):
        return None
    runs = n - len(rest)  # how many share v
    order = np.argsort(others)
    s = others[order]
    below = int(np.searchsorted(s, v, "left"))
    upto = int(np.searchsorted(s, v, "right"))
    # v's run: every value below it, and it with the others equal to it
    out = np.full(n, (below + upto + runs) * (50.0 / n))
    if not len(s):
        return out
    start, end = _runs(s)
    count = end - start
    value = s[start]
    # a run above v has v's run below it; one equal to v is part of it
    start += np.where(value > v, runs, 0)
    end += np.where(value >= v, runs, 0)
    out[rest[order]] = np.repeat((start + end) * (50.0 / n), count)
    return out


def percentile_band(p: float) -> str:
    """A percentile in words.

    Examples
    --------
    >>> percentile_band(95.0), percentile_band(60.0), percentile_band(10.0)
    ('top 10%', 'upper half', 'bottom 25%')
    """
    if p >= 90:
        return "top 10%"
    if p >= 75:
        return "top 25%"
    if p >= 50:
        return "upper half"
    if p >= 25:
        return "lower half"
    return "bottom 25%"
