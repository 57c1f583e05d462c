"""Incremental writes: features after one write, touching only the rows it changes.

A full build (:func:`~kolmatch.matching.features.build_features`) takes minutes at the m scale.
With the market-wide quantities frozen (:class:`~kolmatch.matching.features.Calibration`,
carried by the features), a recorded collaboration changes one talent's track record, skill
and risk and one entry of the promotions: :func:`apply_collaboration` updates those, and its
result equals a full build of the graph after the write with the same calibration (field by
field, up to the order floating-point sums are taken in). Violations change compliance alone:
:func:`apply_violations` re-derives it from the small compliance read. A full build, on a
schedule or after enough change, measures the calibration afresh. Bookings change who is free
when, and nothing a score is made of: :func:`apply_bookings` re-reads the booking table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from kolmatch.errors import BadArgument, StoreError
from kolmatch.graph.market import MarketGraph
from kolmatch.matching.features import (
    FAKE_ENGAGEMENT_NOTE,
    SKILL_PRIOR_ORDERS,
    SPILL_NOTE,
    TRACK_PRIOR,
    MarketFeatures,
    _expected_orders_base,
    booking_columns,
    campaign_columns,
    refresh_risk,
    spill_note,
    spill_risk,
)

__all__ = [
    "CollaborationWrite",
    "apply_bookings",
    "apply_campaigns",
    "apply_collaboration",
    "apply_violations",
]


@dataclass(frozen=True)
class CollaborationWrite:
    """A recorded collaboration: a PROMOTED relationship from a talent to a product.

    ``gmv`` and ``orders`` are None (or NaN) where the outcome is not known (a sponsored post):
    it then counts as experience but not in the GMV means or the skill. ``fee``, ``time`` and
    ``campaign`` are recorded in the graph but enter no feature.
    """

    talent: str
    product: str
    gmv: float | None = None
    orders: float | None = None
    fee: float | None = None
    time: str | None = None
    campaign: str | None = None


def _amount(name: str, x: float | None) -> float:
    """A sent amount as the graph holds it: NaN where not known; refused if negative."""
    if x is None or math.isnan(x):
        return math.nan
    if not math.isfinite(x) or x < 0:
        raise BadArgument(name, f"must be a finite amount >= 0, got {x}")
    return float(x)


def apply_collaboration(f: MarketFeatures, write: CollaborationWrite) -> MarketFeatures:
    """``f`` after one collaboration recorded: what a full build with ``f``'s calibration gives.

    Changed, all in the talent's row: track record (``talent_track``, ``_n``, ``_known``,
    ``_gmv``, ``_merchants``) in the product's primary category, observed and expected orders
    and the skill, the risk carried over from what it promoted (and its note), and the
    promotions' entry. The talent's category mix, the market's conversion rate and the
    category means stay as the calibration froze them, so nothing else moves. ``f`` is not
    modified: the arrays that change are copied (memory copies of (T,) and (T, C) arrays, and
    one sparse addition over the promotions).

    Parameters
    ----------
    f
        The features of the graph before the write.
    write
        The collaboration.

    Returns
    -------
    MarketFeatures

    Raises
    ------
    UnknownId
        If the talent or product is not in ``f``.
    BadArgument
        If GMV or orders are negative or infinite.

    Examples
    --------
    >>> w = CollaborationWrite("t1", "p7", gmv=1200.0, orders=12)
    >>> w.gmv, w.campaign
    (1200.0, None)
    """
    t, p = f.talent_row(write.talent), f.product_row(write.product)
    gmv, orders = _amount("gmv", write.gmv), _amount("orders", write.orders)
    c, m = int(f.product_category[p]), int(f.product_merchant[p])
    # what the talent promoted before (rows of the promotions, with how often)
    before = sp.coo_matrix(f.promotions[:, [t]])
    promoted, times = before.row.astype(np.int64), before.data
    one = sp.csr_matrix(([1.0], ([p], [t])), shape=f.promotions.shape)
    changes: dict[str, Any] = {"promotions": sp.csr_matrix(f.promotions + one)}
    if c >= 0:
        n_tc, k_tc, g_tc = (
            f.talent_track_n.copy(),
            f.talent_track_known.copy(),
            f.talent_track_gmv.copy(),
        )
        n_tc[t, c] += 1.0
        if not math.isnan(gmv):
            k_tc[t, c] += 1.0
            g_tc[t, c] += gmv
        track = f.talent_track.copy()
        track[t] = (g_tc[t] + TRACK_PRIOR * f.category_gmv_mean) / (k_tc[t] + TRACK_PRIOR)
        changes |= {
            "talent_track_n": n_tc,
            "talent_track_known": k_tc,
            "talent_track_gmv": g_tc,
            "talent_track": track,
        }
        # distinct merchants per category: a (category, merchant) pair it had not worked in
        worked = (f.product_category[promoted] == c) & (f.product_merchant[promoted] == m)
        if not worked.any():
            tm = f.talent_track_merchants.copy()
            tm[t, c] += 1.0
            changes["talent_track_merchants"] = tm
        if not math.isnan(orders):
            base = _expected_orders_base(
                f.talent_audience_size[t : t + 1],
                f.talent_audience[t : t + 1, c],
                f.talent_price_level[t : t + 1],
                f.product_log_price[p : p + 1],
            )
            obs, exp = f.talent_orders_observed.copy(), f.talent_orders_expected.copy()
            obs[t] += orders
            exp[t] += f.gmv_rate * base[0]
            skill = f.talent_skill.copy()
            collab = (obs[t] + SKILL_PRIOR_ORDERS) / (exp[t] + SKILL_PRIOR_ORDERS)
            skill[t] = np.sqrt(collab * f.talent_content_skill[t])
            changes |= {
                "talent_orders_observed": obs,
                "talent_orders_expected": exp,
                "talent_skill": skill,
            }
    changes |= _spill_changes(f, t, np.append(promoted, p), np.append(times, 1.0))
    return replace(f, **changes)


def _spill_changes(
    f: MarketFeatures, t: int, products: np.ndarray, times: np.ndarray
) -> dict[str, Any]:
    """Talent ``t``'s risk and notes with the risk of ``products`` (promoted ``times`` each)."""
    seller = f.product_merchant[products]
    pr = np.maximum(
        f.product_risk[products],
        np.where(seller >= 0, f.merchant_risk[np.maximum(seller, 0)], 0.0),
    )
    spill = spill_risk(pr, times)
    notes = f.talent_risk_notes[t]
    had = [n for n in notes if n.startswith(SPILL_NOTE)]
    if spill == 0.0 and not had:
        return {}  # nothing it promoted carries risk, before or now
    own = f.talent_risk_own[t]
    risk = f.talent_risk.copy()
    risk[t] = 1.0 if own >= 1.0 else min(own + (spill + f.talent_risk_agency[t]), 0.99)
    # the notes in the order of a build: its own violations, this, its agency's, fake engagement
    kept = [n for n in notes if not n.startswith(SPILL_NOTE)]
    a = int(f.talent_agency[t])
    later = (f"agency {f.agency_ids[a]}:" if a >= 0 else FAKE_ENGAGEMENT_NOTE, FAKE_ENGAGEMENT_NOTE)
    at = next((i for i, n in enumerate(kept) if n.startswith(later)), len(kept))
    if spill > 0:
        kept.insert(at, spill_note(spill))
    all_notes = list(f.talent_risk_notes)
    all_notes[t] = kept
    return {"talent_risk": risk, "talent_risk_notes": all_notes}


def apply_violations(f: MarketFeatures, compliance: MarketGraph) -> MarketFeatures:
    """``f`` after violations flagged or resolved: compliance re-derived, nothing else.

    Violations reach the features only through risk and the active share, which
    :func:`~kolmatch.matching.features.refresh_risk` recomputes from the small compliance read
    (:data:`~kolmatch.graph.market.COMPLIANCE_READ` of the graph after the writes); the result
    equals a full build with ``f``'s calibration (a calibration holds nothing violations move).

    Parameters
    ----------
    f
        The features before the writes (any number of them, as long as only violations
        changed).
    compliance
        The graph after the writes, read with at least ``COMPLIANCE_READ``.

    Returns
    -------
    MarketFeatures

    Raises
    ------
    StoreError
        If the graph's talents, merchants, products or agencies are not ``f``'s.
    """
    return refresh_risk(compliance, f)


def apply_bookings(f: MarketFeatures, booked: MarketGraph) -> MarketFeatures:
    """``f`` after bookings made or released: the booking arrays re-read, nothing else.

    Bookings enter no score, calibration or compliance: only availability (free slots,
    competitors' bookings), which the planners derive from these arrays. The result equals a
    full build of the graph after the writes with ``f``'s calibration.

    Parameters
    ----------
    f
        The features before the writes.
    booked
        The graph after them, read with at least
        :data:`~kolmatch.graph.market.BOOKINGS_READ`.

    Raises
    ------
    StoreError
        If the graph's talents or merchants are not ``f``'s.
    """
    _same_rows(f, booked, "Talent", "Merchant")
    return replace(f, **booking_columns(booked))


def apply_campaigns(f: MarketFeatures, g: MarketGraph) -> MarketFeatures:
    """``f`` after campaigns created or joined: the campaign arrays re-read, nothing else.

    Campaigns enter the planners' windows and who may be assigned in them, no score; the
    result equals a full build of the graph after the writes with ``f``'s calibration.

    Parameters
    ----------
    f
        The features before the writes.
    g
        The graph after them, read with at least
        :data:`~kolmatch.graph.market.CAMPAIGNS_READ`.

    Raises
    ------
    StoreError
        If the graph's merchants are not ``f``'s.
    """
    _same_rows(f, g, "Merchant")
    return replace(f, **campaign_columns(g))


def _same_rows(f: MarketFeatures, g: MarketGraph, *labels: str) -> None:
    """:class:`StoreError` unless ``g``'s nodes of ``labels`` are ``f``'s, row for row (the
    arrays a write re-reads index them)."""
    rows = {"Talent": f.talent_ids, "Merchant": f.merchant_ids}
    for label in labels:
        if not np.array_equal(g.node(label).ids, rows[label]):
            raise StoreError(f"the graph's {label} nodes changed: the features must be rebuilt")
