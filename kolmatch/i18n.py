"""The reader's language, en or zh-CN: ``--lang``, ``KOLMATCH_LANG``, ``Accept-Language``.

Everything kolmatch writes for a person comes from :data:`MESSAGES`, one catalogue per
language of ``str.format`` templates under the same keys; machine-read output (JSON keys and
numbers, API error codes) never changes with the language. Amounts read as a merchant reads
them (:func:`format_amount`: ``¥12.3万`` in Chinese), counts agree with their noun
(:func:`count`), and the categories of the synthetic and real markets have Chinese names
(:func:`category_name`).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping

from kolmatch.errors import BadArgument

__all__ = [
    "CATEGORY_NAMES",
    "DEFAULT_LANG",
    "LANGS",
    "LANG_ENV",
    "MESSAGES",
    "NOUNS",
    "category_name",
    "count",
    "format_amount",
    "message",
    "negotiate",
    "placeholders",
    "resolve_lang",
]

#: Languages kolmatch writes, in the order a tie is broken.
LANGS = ("en", "zh-CN")
DEFAULT_LANG = "en"
#: The environment variable naming the command line's language (``--lang`` wins).
LANG_ENV = "KOLMATCH_LANG"

_EN: dict[str, str] = {
    # -- evidence of a match (kolmatch/matching/score.py); the English is the historical text,
    # byte for byte: tests/test_policy.py labels evidence numbers by their line's template
    "evidence.who_engaged": "{engaged:,} engaged users",
    "evidence.who_both": "{members:,} followers and engaged users ({engaged:,} engaged)",
    "evidence.who_followers": "{members:,} followers",
    "evidence.its_categories": "its categories",
    "evidence.interest": (
        "{share:.0%} of this talent's audience's interest is in the merchant's categories "
        "{top}across {who}"
    ),
    "evidence.interest_top": "({top_share:.0%} in {category}) ",
    "evidence.hidden_one": (
        "{n:,} audience member leans to {category} but has not bought there yet "
        "(new consumers for this merchant)"
    ),
    "evidence.hidden_many": (
        "{n:,} audience members lean to {category} but have not bought there yet "
        "(new consumers for this merchant)"
    ),
    "evidence.no_audience": (
        "no followers or engaged users in the graph: audience signals are neutral"
    ),
    "evidence.customers": (
        "{reached:,} of this merchant's {customers:,} customers follow or engage with this talent"
    ),
    "evidence.affinity": (
        "closeness to this merchant's customers and people like them (personalised PageRank): "
        "{times:.1f}x the average talent's"
    ),
    "evidence.no_customers": (
        "no customers of this merchant on record: closeness is measured from buyers in its "
        "categories"
    ),
    "evidence.content": (
        "{share:.0%} of its content and collaborations are in the merchant's categories"
    ),
    "evidence.partners": (
        "closeness to the talents who promoted this merchant's products (PageRank over past "
        "collaborations): {times:.1f}x the average talent's"
    ),
    "evidence.categories_from_audience": (
        "categories read from its audience (no content or promotions on record)"
    ),
    "evidence.gender.f": "women",
    "evidence.gender.m": "men",
    "evidence.gender.u": "of unstated gender",
    "evidence.target_gender_age": "{gender} aged {age}",
    "evidence.target_gender": "{gender}",
    "evidence.target_age": "aged {age}",
    "evidence.target": "{share:.0%} of the audience are {who}, the merchant's stated target",
    "evidence.target_hidden": (
        "audience below {minimum} members: its demographics are not shown (target fit counts "
        "as the market's mean)"
    ),
    "evidence.collabs_one": "{n} collaboration",
    "evidence.collabs_many": "{n} collaborations",
    "evidence.merchants_one": "{n} merchant",
    "evidence.merchants_many": "{n} merchants",
    "evidence.collabs_with": "{collaborations} with {merchants}",
    "evidence.collabs_unmeasured": "{collabs} in the merchant's categories (outcomes not recorded)",
    "evidence.collabs_track": (
        "{collabs} in the merchant's categories; GMV per collaboration in the {band} of "
        "talents (percentile {percentile:.0f})"
    ),
    "evidence.band.top10": "top 10%",
    "evidence.band.top25": "top 25%",
    "evidence.band.upper": "upper half",
    "evidence.band.lower": "lower half",
    "evidence.band.bottom25": "bottom 25%",
    "evidence.past_one": "{n} past collaboration, none in the merchant's categories",
    "evidence.past_many": "{n} past collaborations, none in the merchant's categories",
    "evidence.no_track": "no past collaborations on record (track record is the category mean)",
    "evidence.no_collabs_market": (
        "no collaborations on record in this market: track record is not measured"
    ),
    "evidence.price_estimated": "an estimated price of {price} (no list price quoted)",
    "evidence.price_list": "a list price of {price}",
    "evidence.gmv_unmeasured": (
        "no collaboration outcomes on record in this market: expected GMV is not estimated; "
        "{quoted}"
    ),
    "evidence.gmv": (
        "expected GMV {gmv} per collaboration for {quoted} plus {commission:.0%} commission "
        "(ROI {roi:.1f}x net of commission)"
    ),
    "evidence.over_budget": "its price is above the budget of {budget}",
    "evidence.no_engagement": (
        "no engagement recorded in this market: audience quality is not measured"
    ),
    "evidence.low_quality": "only {share:.0%} of followers ever engage (inflated audience?)",
    "evidence.no_violations": "no violations",
    "evidence.tied_one": ("tied on score with {n} other in this list: ordered by follower count"),
    "evidence.tied_many": ("tied on score with {n} others in this list: ordered by follower count"),
    "evidence.available": "available in {window}: a slot is free and no competitor holds it",
    # -- why a talent is or is not listed (score.why_not)
    "why.violations": "severe or unresolved violations",
    "why.compliance": "{talent} is excluded for compliance: {notes}",
    "why.booked": (
        "{talent} is not available in {window}: no free slot, or held exclusively for another "
        "merchant"
    ),
    "why.quoted_estimated": "estimated price {price}",
    "why.quoted_list": "list price {price}",
    "why.unaffordable": "{talent}'s {quoted} is above the budget of {budget}",
    "why.not_finite": "{talent}'s score is not finite with these weights",
    "why.ranked": "ranked {rank:,} of {eligible:,} with score {score:+.3f}",
    "why.below_cut": (
        "{talent} is {ranked}; the list of {top} ends at rank {cut_rank} with score "
        "{cut_score:+.3f}"
    ),
    "why.over_budget": "; its {quoted} is above the merchant's budget of {budget}",
    "why.listed": "{talent} is in the list: {ranked}{over}",
    "why.reason.compliance": "compliance",
    "why.reason.booked": "booked",
    "why.reason.unaffordable": "unaffordable",
    "why.reason.below the cut": "below the cut",
    "why.reason.listed": "listed",
    # -- API error messages by code (kolmatch/api/errors.py): the English is the raised text,
    # so only the located detail ({detail}) is carried over into another language
    "error.UNAUTHENTICATED": "{detail}",
    "error.FORBIDDEN": "{detail}",
    "error.FORBIDDEN.what": "not allowed: {what}",
    "error.NOT_FOUND": "{detail}",
    "error.NOT_FOUND.id": "unknown {label} id {id}",
    "error.NOT_ELIGIBLE": "{detail}",
    "error.NOT_ELIGIBLE.id": "{label} {id} is not eligible: {reason}",
    "error.TIMEOUT": "{detail}",
    "error.LIMIT_EXCEEDED": "{detail}",
    "error.LIMIT_EXCEEDED.cost": (
        "argument {argument}: this would cost {figure} {unit}, over the ceiling of {ceiling}; "
        "nothing was run{hint}"
    ),
    "error.BAD_ARGUMENT": "{detail}",
    "error.BAD_ARGUMENT.argument": "argument {argument}: {reason}",
    "error.RATE_LIMITED": "{detail}",
    "label.Merchant": "Merchant",
    "label.Talent": "Talent",
    "label.Campaign": "Campaign",
    "label.Product": "Product",
    "label.Institution": "Institution",
    "label.Job": "Job",
    # -- the command line (kolmatch/cli.py)
    "cli.col.rank": "#",
    "cli.col.talent": "talent",
    "cli.col.name": "name",
    "cli.col.tier": "tier",
    "cli.col.quote": "quote",
    "cli.col.gmv": "exp. GMV",
    "cli.col.roi": "ROI",
    "cli.col.score": "score",
    "cli.col.reach": "new reach",
    "cli.tier.top": "top",
    "cli.tier.mid": "mid",
    "cli.tier.micro": "micro",
    "cli.match.head": "{talents} for merchant {merchant}{budget}",
    "cli.match.budget": ", priced within {budget}",
    "cli.match.talent": "{name}, {tier} tier",
    "cli.match.none": "no eligible talent for merchant {merchant}",
    "cli.match.above_budget": "! above the budget",
    "cli.match.estimated": "* estimated price: the talent quotes no list price",
    "cli.match.score": (
        "score: weighted sum of standardised signals, see docs/scoring.md; higher is better"
    ),
    "cli.match.gmv": "exp. GMV: per collaboration; ROI: expected GMV / (quote + commission)",
    "cli.why": "{reason}: {detail}",
    "cli.plan.head": "talent matrix for {merchant} in {window}: {talents}, {cost} of {budget}",
    "cli.plan.optimised": "optimised: {kind} = {note}",
    "cli.plan.estimated": "* {fees} (none on record): {note}",
    "cli.plan.reach": "unique target reach {reach:,} of {targets}; expected GMV {gmv}",
    "cli.plan.roi": "ROI {roi:.2f}x net of {rate:.0%} commission ({commission} expected); {floor}",
    "cli.plan.floor": "each talent at least {roi:.2f}x",
    "cli.plan.no_floor": "no floor",
    "cli.plan.max_talents": "max_talents {n} (the merchant's)",
    "cli.plan.objective": (
        "objective {objective}, certified bound {bound}: gap {gap:.2%} ({method}{stopped}, "
        "{seconds:.2f}s, {candidates}, {sampled})"
    ),
    "cli.plan.node_limit": ", at the node limit",
    "cli.plan.time_limit": ", CUT SHORT by the time limit",
    "cli.plan.explain.gmv": (
        "objective: expected GMV x (1 - risk) of the chosen talents plus a yuan value per "
        "weighted unique target user they reach (each user counted once, so audience overlap "
        "earns nothing); the bound is the most any plan could reach, the gap how far this one "
        "may be from it (docs/optimisation.md)"
    ),
    "cli.plan.explain.target_reach": (
        "objective: unique users of the merchant's target audience the chosen talents reach "
        "(each counted once); the bound is the most any plan could reach, the gap how far this "
        "one may be from it (docs/optimisation.md)"
    ),
    "cli.plan.not_reproducible": (
        "not reproducible: the time limit cut the solver short; a re-run may differ"
    ),
    "cli.plan.ties": "ties: {ties:,} decided among equals by {rule}",
    "cli.plan.left_out": "left out: {items}",
    "cli.plan.overlap": ("overlap {a}-{b}: {shared} ({share:.0%} of the smaller audience)"),
    "cli.assign.head": (
        "assigned {pairs} to {merchants} in {window}: total expected value {objective}, bound "
        "{bound}, gap {gap}"
    ),
    "cli.assign.gap_stable": "n/a (stable)",
    "cli.assign.detail": (
        "{method}: {seconds:.1f}s solving, {build:.1f}s building {candidates}; {blocking}"
    ),
    "cli.assign.below_minimum": "{merchants} below their minimum",
    "cli.assign.left_out": "merchants left out: {items}",
    "cli.assign.written": "written to {path}",
    "cli.similar": "{rank:>3}. {talent:<12} audience cosine {similarity:.3f}",
    "cli.overlap": (
        "{a} and {b} share {shared} (followers or engaged users): {share:.1%} of the smaller "
        "audience, Jaccard {jaccard:.3f}"
    ),
    "cli.leads.gmv": "expected GMV {gmv} per collaboration{roi}",
    "cli.leads.roi": ", ROI {roi:.1f}x on the talent's negotiated fee (no commission)",
    "cli.leads.no_gmv": "expected GMV not estimated",
    "cli.leads": (
        "{rank:>3}. {merchant:<10} {gmv}; reaches {reached:,} of its {customers}; lead with "
        "{product}"
    ),
    "cli.generate": (
        "wrote the {scale} market (seed {seed}) to {out} in {seconds:.1f}s; latent truth in {truth}"
    ),
    "cli.load": "loaded {rows} from {files} into {store} in {seconds:.1f}s",
    "cli.note": "note: {note}",
    "cli.load.merged": (
        "note: {store} already held {before}; this load merged into them by id ({new:,} new), "
        "as a day's delta of the same market should: another market belongs in its own --store"
    ),
    "cli.load.delta": (
        "the cached features follow it to version {version} by a delta of the rows of "
        "{users:,} user(s) in {seconds:.1f}s: no rebuild"
    ),
    "cli.load.nothing": (
        "the folder holds no rows: nothing was written (the store's version, and what is "
        "cached for it, hold)"
    ),
    "cli.load.missing": (
        "note: the store holds no {missing} nodes yet: match, plan, assign and the other "
        "reading commands need them ({files})"
    ),
    "cli.import_files": (
        "wrote {rows} from {files} as importer input in {folder} in {seconds:.1f}s; arguments "
        "in {args}"
    ),
    "cli.schema": "constraints and indexes of {store} online in {seconds:.1f}s",
    "cli.migrate.schemaless": (
        "{store}: constraints and indexes in place (schemaless: nothing to migrate)"
    ),
    "cli.migrate": "{store}: {was} -> store format {format}",
    "cli.migrate.was": "store format {format}",
    "cli.migrate.none": "no kolmatch graph",
    "cli.evaluate.head": ("top-{k} lists for {merchants}: share of the oracle-best GMV captured"),
    "cli.evaluate.vs_followers": "engine / follower-count GMV: {x:.2f}x",
    "cli.evaluate.oracle": "oracle-best / follower-count GMV: {x:.2f}x (the most reachable)",
    "cli.evaluate.auc": "hidden-need AUC (observed lean vs latent interest): {auc:.3f}",
    "cli.evaluate_real": "real data held out (split {split}, seed {seed}): NDCG@20 and recall@50",
    "cli.import_real": "wrote {dataset} to {out}: {talents}, {users}, {follows}",
    "cli.import_real.next": "load it with: kolmatch load {out}",
    "cli.demo.head": "kolmatch demo: the {scale} market (seed {seed})",
    "cli.demo.generated": "generated in {seconds:.1f}s -> {market}",
    "cli.demo.loaded": "loaded {nodes} and {rels} into {store} in {seconds:.1f}s",
    "cli.demo.top": "top 3 talents for merchant {merchant} ({command}):",
    "cli.demo.score": "score {score:+.3f}",
    "cli.schema_print": "wrote the GraphQL schema (SDL) to {out}",
    "cli.target.head": "cheapest matrix for {merchant} in {window}: {talents}, {cost}",
    "cli.target.reached": "reaches {achieved} of the target {target} ({kind})",
    "cli.target.out_of_reach": "out of reach: the most any eligible matrix brings is {most}",
    "cli.target.certified": (
        "certified: no matrix reaching it costs less than {bound} (gap {gap:.2%})"
    ),
    "cli.target.explain": "minimised: the fees of talents whose {measure} meets the target",
    "cli.target.measure.gmv": "expected GMV x (1 - risk)",
    "cli.target.measure.new_customers": "new customers reached (sampled, scaled)",
    "cli.col.new_customers": "new customers",
    "cli.campaign.row": "{id}  {name}  {start}..{end}  {status}  {goal}  {target}  {merchants}",
    "cli.campaign.created": (
        "created campaign {id}: {name}, {start}..{end} (graph version {version})"
    ),
    "cli.campaign.joined": "{merchant} joined campaign {id} (graph version {version})",
    "cli.book.done": "booked {written} for {merchant}, {start}..{end} (graph version {version})",
    "cli.book.repeat": "already booked: {ids} (nothing written)",
    "cli.release.done": "released {released} (graph version {version})",
    "cli.release.none": (
        "nothing released: none of these bookings is held (graph version {version})"
    ),
    "cli.growth.head": (
        "growth programme, {first}..{last}: {merchants} on track for {mgoal} a "
        "year, {talents} for {tgoal}"
    ),
    "cli.growth.backtest": (
        "forecast held out on {months}: WAPE {ours} (last year {naive}); "
        "market total {bias} (last year {naive_bias})"
    ),
    "cli.growth.owners": "{who}, on track first, then the closest to the goal:",
    "cli.growth.merchants": "merchants",
    "cli.growth.talents": "talents",
    "cli.growth.outlook": (
        "realised over the last 12 months {realised}; next 12 months ({first}..{last}): "
        "forecast {forecast}, booked slots: {slots}, expected {booked} (shown beside the "
        "forecast, not added to it; on track takes the larger of the two)"
    ),
    "cli.growth.later": "booked slots starting after {last}: {slots}, in no figure above",
    "cli.growth.owner": (
        "{id}: last 12 months {past}; next 12: forecast {ahead}, booked {booked} "
        "(slots: {slots}); gap {gap} ({basis})"
    ),
    "cli.growth.basis.forecast": "by the forecast",
    "cli.growth.basis.booked": "by the bookings",
    "cli.growth.pairings": "pairings that close the most gap:",
    "cli.growth.pairing": "{merchant} + {talent}: {gmv} a collaboration, closes {closed}",
    # -- the FACT split (kolmatch/matching/fact.py, `kolmatch fact`)
    "fact.channel.field": "Field",
    "fact.channel.alliance": "Alliance",
    "fact.channel.campaign": "Campaign",
    "fact.channel.top_kol": "Top-KOL",
    "fact.field.no_room": "Field: no live room of its own",
    "fact.field.no_sales": "Field: its live room has no session with sales to learn from",
    "fact.field.curve": (
        "Field: {now:.1f} sessions a month now at {cost} each; the month's GMV grows as "
        "sessions^{b:.2f} ({own:.0%} from its own months); {added} more return {gmv}, the "
        "last ¥{last:.2f} per yuan, the next ¥{next:.2f}"
    ),
    "fact.field.curve_none": (
        "Field: {now:.1f} sessions a month now at {cost} each; the month's GMV grows as "
        "sessions^{b:.2f} ({own:.0%} from its own months); one more returns ¥{next:.2f} per yuan"
    ),
    "fact.talents.none": "{channel}: no talent can be planned ({why})",
    "fact.why.cheapest": "; the cheapest eligible talent costs {cheapest}",
    "fact.why.no_talents": "the graph has no talents",
    "fact.why.max_talents": "the merchant takes at most {n} talents (max_talents)",
    "fact.talents.no_candidate": "{channel}: no eligible talent in this tier returns its cost",
    "fact.talents.chosen": (
        "{channel}: {talents} talents for {spend}, expected {gmv}; the last returns "
        "¥{last:.2f} per yuan, the next best ¥{next:.2f}"
    ),
    "fact.talents.unbought": (
        "{channel}: nothing bought; its best step returns ¥{best:.2f} per yuan (floor "
        "¥{floor:.2f}), does not fit what is left, or max_talents is reached"
    ),
    "fact.campaign.none": "Campaign: no joined campaign overlaps {window}",
    "fact.campaign.no_products": "Campaign {campaign}: joined, but no product is in its brief",
    "fact.campaign.lift": (
        "Campaign {campaigns}: sales in campaign windows run {lift:.2f}x the days around "
        "them, market-wide"
    ),
    "fact.unspent.floor": "{left} unspent: no further step returns ¥{floor:.2f} per yuan",
    "fact.unspent.max_talents": "{left} unspent: max_talents {n} reached",
    "fact.unspent.capped": (
        "{left} unspent: the steps worth buying that fit it (the cheapest {cheapest}) are in "
        "channels at their share of the budget"
    ),
    "fact.unspent.too_dear": (
        "{left} unspent: the next step worth buying costs more than is left (the cheapest "
        "{cheapest})"
    ),
    "fact.field.full": (
        "Field: {now:.1f} sessions a month now at {cost} each; the month's GMV grows as "
        "sessions^{b:.2f}; {added} more return {gmv}, and the window holds no more (at most "
        "{most} sessions a day)"
    ),
    "providers.evidence.count": (
        "{engagements} completed engagements, {mine} for other merchants in your categories"
    ),
    "providers.evidence.too_few": (
        "too few merchants in your categories to show their outcome (fewer than {minimum})"
    ),
    "providers.evidence.median": "median GMV lift in your categories {lift}",
    "providers.evidence.price": "list price {price} per {days} days",
    "cli.providers.head": (
        "Service providers for {merchant}, by expected GMV lift in its categories "
        "(net of the market's own change)"
    ),
    "cli.providers.row": (
        "{rank:>3}. {provider} {name} ({kind}): expected lift {lift}, {engagements} engagements, "
        "{in_categories} in your categories; {median}; {price} per 30 days{per_yuan}"
    ),
    "cli.providers.too_few": (
        "too few in your categories to show their median (fewer than {minimum})"
    ),
    "cli.providers.median": "median lift in your categories {lift}",
    "cli.providers.per_yuan": ", about ¥{x:.2f} more GMV per yuan of fee",
    "cli.providers.none": "no service providers to rank",
    "cli.provider_leads.head": (
        "Merchants {provider} would serve best, by its expected lift for them"
    ),
    "cli.provider_leads.row": "{rank:>3}. {merchant} {name} ({categories}): expected lift {lift}",
    "cli.provider_leads.none": "no merchants to propose",
    "cli.fact.head": (
        "FACT split for {merchant}, {start}..{end}: {spent} of {budget}, expected {gmv}"
    ),
    "cli.fact.channel": (
        "{channel}: {spend}, expected {gmv}, ROI {roi}, last yuan returns ¥{last:.2f}"
    ),
    "cli.fact.sessions": "add {added} sessions at {cost} each ({now:.1f} in the window now)",
    "cli.fact.lift": "campaign lift {lift:.2f}x; floor ¥{floor:.2f} GMV per yuan",
    # -- the planners' own phrases, rendered from their fields (kolmatch/cli.py): matching
    # writes English for logs and the API, the command line says it in the reader's language
    "cli.na": "n/a",
    "cli.window.the coming period": "the coming period ({start}..{end})",
    "cli.window.the window": "the window ({start}..{end})",
    "cli.window.campaign": "campaign {id} ({start}..{end})",
    "cli.plan.note.gmv": (
        "expected GMV x (1 - risk) + {value} per weighted unique target user (collaboration "
        "outcomes in the market: gmv_rate {rate})"
    ),
    "cli.plan.note.target_reach": "unique target users reached ({audience}): {why}",
    "cli.plan.audience": (
        "{customers} customers, {buyers} more category buyers, {interested} interested users, "
        "{lookalikes} PageRank lookalikes"
    ),
    "cli.plan.why.no_rate": "no collaboration GMV in the market to learn from (gmv_rate 0)",
    "cli.plan.why.no_gmv": "no candidate has expected GMV for this merchant's products",
    "cli.plan.fee_rule.median": (
        "{rate} per platform follower: the median {quote} per follower of the {n} talents with "
        "a {quote} on record (at least {floor}, the cheapest {quote} on record)"
    ),
    "cli.plan.fee_rule.default": (
        "{rate} per platform follower (DEFAULT_FEE_PER_FOLLOWER, the generated market's fee "
        "model; at least {floor}): no {quote} is on record in this market"
    ),
    "cli.plan.quote.fee": "fee",
    "cli.plan.quote.list price": "list price",
    "cli.plan.tie_break": "more platform followers first, then talent id",
    "cli.plan.unspent.none_fits": "{left} unspent: no further eligible talent costs {left} or less",
    "cli.plan.unspent.cheapest": "; the cheapest left costs {cheapest}",
    "cli.plan.unspent.max_talents": "{left} unspent: max_talents {n} reached",
    "cli.plan.unspent.floor": "{left} unspent: no further talent returns at least {floor}",
    "cli.plan.unspent.nothing": (
        "{left} unspent: no further talent adds expected GMV or a new target user"
    ),
    "cli.plan.unspent.only": "{left} unspent: the {talents} that fit it: {reason}",
    "cli.plan.unspent.several": "{left} unspent: of the {talents} that fit it, {parts}",
    # -- why the planners leave a talent or a merchant out: the keys of their left_out
    # (kolmatch/matching/plan.py LEFT_OUT_*, assign.py UNASSIGNED_REASONS)
    "reason.item": "{n} {reason}",
    "reason.sep": ", ",
    "reason.compliance": "compliance",
    "reason.no free slot": "no free slot",
    "reason.booked by a competitor": "booked by a competitor",
    "reason.already held by the merchant": "already held by the merchant",
    "reason.no list price": "no list price",
    "reason.fee over the budget": "quote over the budget",
    "reason.below the candidate cut": "below the candidate cut",
    "reason.not chosen by the solver": "not chosen by the solver",
    "reason.add nothing": "add nothing (no expected GMV, no new target user)",
    "reason.return below": "return below {floor}",
    "reason.tier full": "tier {tier} full ({talents})",
    "reason.tier share": "tier {tier} at its {share} of the budget",
    "reason.max_talents": "max_talents {n} reached",
    "reason.not in the campaign": "not in the campaign",
    "reason.no products": "no products",
    "reason.no eligible products": "no eligible products",
    "reason.no eligible talent": "no eligible talent",
    "reason.return below the floor": "return below the floor",
    "cli.campaign.status.upcoming": "upcoming",
    "cli.campaign.status.running": "running",
    "cli.campaign.status.over": "over",
    "cli.campaign.goal.gmv": "GMV",
    "cli.campaign.goal.new_customers": "new customers",
    "cli.campaign.goal.reach": "reach",
    "cli.book.campaign_or_dates": (
        "give the window as {by_campaign} or as {by_dates}, not both (got {got})"
    ),
}

_ZH: dict[str, str] = {
    "evidence.who_engaged": "{engaged:,} 名互动用户",
    "evidence.who_both": "{members:,} 名粉丝及互动用户（其中互动 {engaged:,} 名）",
    "evidence.who_followers": "{members:,} 名粉丝",
    "evidence.its_categories": "其经营品类",
    "evidence.interest": "该达人受众的兴趣有 {share:.0%} 落在商家品类{top}，覆盖 {who}",
    "evidence.interest_top": "（{category}占 {top_share:.0%}）",
    "evidence.hidden_one": "{n:,} 名受众偏好{category}但尚未在该品类下单（本商家的新客）",
    "evidence.hidden_many": "{n:,} 名受众偏好{category}但尚未在该品类下单（本商家的新客）",
    "evidence.no_audience": "图中没有粉丝或互动用户：受众类信号按中性计",
    "evidence.customers": "本商家 {customers:,} 名顾客中有 {reached:,} 名关注或互动过该达人",
    "evidence.affinity": (
        "与本商家顾客及相似人群的亲近度（个性化 PageRank）：达人平均值的 {times:.1f} 倍"
    ),
    "evidence.no_customers": "暂无本商家的顾客记录：亲近度按其品类的购买者计算",
    "evidence.content": "其内容与合作有 {share:.0%} 属于商家品类",
    "evidence.partners": (
        "与曾推广本商家商品的达人的亲近度（基于历史合作的 PageRank）：达人平均值的 {times:.1f} 倍"
    ),
    "evidence.categories_from_audience": "品类由其受众推断（暂无内容或推广记录）",
    "evidence.gender.f": "女性",
    "evidence.gender.m": "男性",
    "evidence.gender.u": "未说明性别者",
    "evidence.target_gender_age": "{age}岁{gender}",
    "evidence.target_gender": "{gender}",
    "evidence.target_age": "{age}岁人群",
    "evidence.target": "受众中 {share:.0%} 为{who}，即商家设定的目标人群",
    "evidence.target_hidden": "受众不足 {minimum} 人：不展示其人口属性（目标匹配度按市场均值计）",
    "evidence.collabs_one": "{n} 次合作",
    "evidence.collabs_many": "{n} 次合作",
    "evidence.merchants_one": "{n} 个商家",
    "evidence.merchants_many": "{n} 个商家",
    "evidence.collabs_with": "与 {merchants}共 {collaborations}",
    "evidence.collabs_unmeasured": "在商家品类中{collabs}（未记录合作结果）",
    "evidence.collabs_track": (
        "在商家品类中{collabs}；单次合作 GMV 位于达人中的{band}（百分位 {percentile:.0f}）"
    ),
    "evidence.band.top10": "前 10%",
    "evidence.band.top25": "前 25%",
    "evidence.band.upper": "上半区",
    "evidence.band.lower": "下半区",
    "evidence.band.bottom25": "后 25%",
    "evidence.past_one": "过往 {n} 次合作，均不在商家品类",
    "evidence.past_many": "过往 {n} 次合作，均不在商家品类",
    "evidence.no_track": "暂无过往合作记录（历史表现按品类均值计）",
    "evidence.no_collabs_market": "本市场暂无合作记录：不衡量历史表现",
    "evidence.price_estimated": "估算报价 {price}（未公开刊例价）",
    "evidence.price_list": "刊例价 {price}",
    "evidence.gmv_unmeasured": "本市场暂无合作结果记录：不估算预期 GMV；{quoted}",
    "evidence.gmv": (
        "单次合作预期 GMV {gmv}，成本为{quoted}加 {commission:.0%} 佣金"
        "（扣除佣金后 ROI {roi:.1f} 倍）"
    ),
    "evidence.over_budget": "其报价高于预算 {budget}",
    "evidence.no_engagement": "本市场未记录互动：不衡量受众质量",
    "evidence.low_quality": "仅 {share:.0%} 的粉丝有过互动（粉丝可能注水？）",
    "evidence.no_violations": "无违规记录",
    "evidence.tied_one": "与本列表中另外 {n} 位达人得分相同：按粉丝数排序",
    "evidence.tied_many": "与本列表中另外 {n} 位达人得分相同：按粉丝数排序",
    "evidence.available": "{window} 档期可用：有空档，且无竞品商家占用",
    "why.violations": "严重或未处理的违规",
    "why.compliance": "{talent} 因合规原因被排除：{notes}",
    "why.booked": "{talent} 在 {window} 档期不可用：无空档，或已被其他商家独家占用",
    "why.quoted_estimated": "估算报价 {price}",
    "why.quoted_list": "刊例价 {price}",
    "why.unaffordable": "{talent} 的{quoted}高于预算 {budget}",
    "why.not_finite": "在这组权重下 {talent} 的得分不是有限值",
    "why.ranked": "排名第 {rank:,}（共 {eligible:,} 位），得分 {score:+.3f}",
    "why.below_cut": (
        "{talent} {ranked}；前 {top} 名的列表止于第 {cut_rank} 名，得分 {cut_score:+.3f}"
    ),
    "why.over_budget": "；其{quoted}高于商家预算 {budget}",
    "why.listed": "{talent} 在列表中：{ranked}{over}",
    "why.reason.compliance": "合规排除",
    "why.reason.booked": "档期已满",
    "why.reason.unaffordable": "超出预算",
    "why.reason.below the cut": "未进入列表",
    "why.reason.listed": "已上榜",
    "error.UNAUTHENTICATED": "未认证：{detail}",
    "error.FORBIDDEN": "无权访问：{detail}",
    "error.FORBIDDEN.what": "无权访问：{what}",
    "error.NOT_FOUND": "未找到：{detail}",
    "error.NOT_FOUND.id": "未找到{label} {id}",
    "error.NOT_ELIGIBLE": "不符合条件：{detail}",
    "error.NOT_ELIGIBLE.id": "{label} {id} 不符合条件：{reason}",
    "error.TIMEOUT": "请求超时：{detail}",
    "error.LIMIT_EXCEEDED": "超出上限：{detail}",
    "error.LIMIT_EXCEEDED.cost": (
        "参数 {argument} 超出上限：预计开销 {figure} {unit}，上限为 {ceiling}；未执行任何操作{hint}"
    ),
    "error.BAD_ARGUMENT": "参数有误：{detail}",
    "error.BAD_ARGUMENT.argument": "参数 {argument} 有误：{reason}",
    "error.RATE_LIMITED": "请求过于频繁：{detail}",
    "label.Merchant": "商家",
    "label.Talent": "达人",
    "label.Campaign": "活动",
    "label.Product": "商品",
    "label.Institution": "机构",
    "label.Job": "任务",
    "cli.col.rank": "#",
    "cli.col.talent": "达人",
    "cli.col.name": "名称",
    "cli.col.tier": "层级",
    "cli.col.quote": "报价",
    "cli.col.gmv": "预期GMV",
    "cli.col.roi": "ROI",
    "cli.col.score": "得分",
    "cli.col.reach": "新增触达",
    "cli.tier.top": "头部",
    "cli.tier.mid": "腰部",
    "cli.tier.micro": "尾部",
    "cli.match.head": "商家 {merchant} 的匹配达人：{talents}{budget}",
    "cli.match.budget": "，报价不超过 {budget}",
    "cli.match.talent": "{name}，{tier}达人",
    "cli.match.none": "商家 {merchant} 没有符合条件的达人",
    "cli.match.above_budget": "! 超出预算",
    "cli.match.estimated": "* 估算报价：该达人未公开刊例价",
    "cli.match.score": "得分：各标准化信号的加权和，见 docs/scoring.md；越高越好",
    "cli.match.gmv": "预期GMV：单次合作；ROI：预期 GMV /（报价 + 佣金）",
    "cli.why": "{reason}：{detail}",
    "cli.plan.head": "{merchant} 在 {window} 的达人矩阵：{talents}，花费 {cost}（预算 {budget}）",
    "cli.plan.optimised": "优化目标：{kind} = {note}",
    "cli.plan.estimated": "* {fees}（无记录）：{note}",
    "cli.plan.reach": "去重目标触达 {reach:,}（共 {targets}）；预期 GMV {gmv}",
    "cli.plan.roi": "扣除 {rate:.0%} 佣金后 ROI {roi:.2f} 倍（预计佣金 {commission}）；{floor}",
    "cli.plan.floor": "每位达人至少 {roi:.2f} 倍",
    "cli.plan.no_floor": "无下限",
    "cli.plan.max_talents": "最多 {n} 位达人（商家设定）",
    "cli.plan.objective": (
        "目标值 {objective}，可证上界 {bound}：差距 {gap:.2%}（{method}{stopped}，"
        "{seconds:.2f} 秒，{candidates}，{sampled}）"
    ),
    "cli.plan.node_limit": "，达到节点上限",
    "cli.plan.time_limit": "，因时间上限提前停止",
    "cli.plan.explain.gmv": (
        "目标值：所选达人的预期 GMV ×（1 − 风险）之和，加上每位加权去重目标用户的人民币价值"
        "（每位用户只计一次，受众重叠不加分）；上界是任何方案可能达到的最大值，差距即本方案离它"
        "最多多远（docs/optimisation.md）"
    ),
    "cli.plan.explain.target_reach": (
        "目标值：所选达人触达的商家目标人群去重用户数（每人只计一次）；上界是任何方案可能达到的"
        "最大值，差距即本方案离它最多多远（docs/optimisation.md）"
    ),
    "cli.plan.not_reproducible": "不可复现：求解器被时间上限提前停止，重跑结果可能不同",
    "cli.plan.ties": "并列：{ties:,} 处按 {rule} 在同分者中决定",
    "cli.plan.left_out": "未纳入：{items}",
    "cli.plan.overlap": "重叠 {a}-{b}：{shared}（占较小受众的 {share:.0%}）",
    "cli.assign.head": (
        "在 {window} 为 {merchants}分配了 {pairs}：总预期价值 {objective}，上界 {bound}，差距 {gap}"
    ),
    "cli.assign.gap_stable": "不适用（稳定匹配）",
    "cli.assign.detail": (
        "{method}：求解 {seconds:.1f} 秒，构建 {candidates}用时 {build:.1f} 秒；{blocking}"
    ),
    "cli.assign.below_minimum": "{merchants}低于其最低要求",
    "cli.assign.left_out": "未纳入的商家：{items}",
    "cli.assign.written": "已写入 {path}",
    "cli.similar": "{rank:>3}. {talent:<12} 受众余弦相似度 {similarity:.3f}",
    "cli.overlap": (
        "{a} 与 {b} 共有 {shared}（粉丝或互动用户）：占较小受众的 {share:.1%}，"
        "Jaccard {jaccard:.3f}"
    ),
    "cli.leads.gmv": "单次合作预期 GMV {gmv}{roi}",
    "cli.leads.roi": "，ROI {roi:.1f} 倍（按达人协商费用计，不含佣金）",
    "cli.leads.no_gmv": "未估算预期 GMV",
    "cli.leads": (
        "{rank:>3}. {merchant:<10} {gmv}；触达其 {customers}中的 {reached:,} 名；主推 {product}"
    ),
    "cli.generate": (
        "已将 {scale} 规模市场（种子 {seed}）写入 {out}，用时 {seconds:.1f} 秒；潜在真值在 {truth}"
    ),
    "cli.load": "已从 {files}载入 {rows}到 {store}，用时 {seconds:.1f} 秒",
    "cli.note": "注意：{note}",
    "cli.load.merged": (
        "注意：{store} 已有 {before}；本次载入按 id 合并（新增 {new:,} 个），"
        "同一市场的增量本应如此；另一个市场请载入各自的 --store"
    ),
    "cli.load.delta": (
        "缓存的特征已按 {users:,} 个用户的增量行在 {seconds:.1f} 秒内更新到版本 {version}：无需重建"
    ),
    "cli.load.nothing": "文件夹中没有数据行：未写入任何内容（存储的版本及其缓存均保持不变）",
    "cli.load.missing": (
        "注意：存储中还没有 {missing} 节点：match、plan、assign 等读取命令需要它们（{files}）"
    ),
    "cli.import_files": (
        "已从 {files}写入 {rows}作为导入器输入，位于 {folder}，用时 {seconds:.1f} 秒；参数在 {args}"
    ),
    "cli.schema": "{store} 的约束与索引已就绪，用时 {seconds:.1f} 秒",
    "cli.migrate.schemaless": "{store}：约束与索引已就绪（无模式存储：无需迁移）",
    "cli.migrate": "{store}：{was} -> 存储格式 {format}",
    "cli.migrate.was": "存储格式 {format}",
    "cli.migrate.none": "无 kolmatch 图",
    "cli.evaluate.head": "{merchants}的前 {k} 名列表：捕获的最优 GMV 占比",
    "cli.evaluate.vs_followers": "引擎 / 按粉丝数 GMV：{x:.2f} 倍",
    "cli.evaluate.oracle": "最优 / 按粉丝数 GMV：{x:.2f} 倍（可达上限）",
    "cli.evaluate.auc": "潜在需求 AUC（观测偏好对比潜在兴趣）：{auc:.3f}",
    "cli.evaluate_real": "真实数据留出评估（划分 {split}，种子 {seed}）：NDCG@20 与 recall@50",
    "cli.import_real": "已将 {dataset} 写入 {out}：{talents}，{users}，{follows}",
    "cli.import_real.next": "载入命令：kolmatch load {out}",
    "cli.demo.head": "kolmatch 演示：{scale} 规模市场（种子 {seed}）",
    "cli.demo.generated": "生成用时 {seconds:.1f} 秒 -> {market}",
    "cli.demo.loaded": "已将 {nodes}和 {rels}载入 {store}，用时 {seconds:.1f} 秒",
    "cli.demo.top": "商家 {merchant} 的前 3 位达人（{command}）：",
    "cli.demo.score": "得分 {score:+.3f}",
    "cli.schema_print": "已将 GraphQL 模式（SDL）写入 {out}",
    "cli.target.head": "{merchant} 在 {window} 的最省矩阵：{talents}，花费 {cost}",
    "cli.target.reached": "达成 {achieved}，目标 {target}（{kind}）",
    "cli.target.out_of_reach": "目标不可达：合规矩阵最多带来 {most}",
    "cli.target.certified": "已证明：达成目标的矩阵花费不低于 {bound}（差距 {gap:.2%}）",
    "cli.target.explain": "最小化：{measure}达到目标的达人费用",
    "cli.target.measure.gmv": "预期 GMV ×（1 − 风险）",
    "cli.target.measure.new_customers": "触达的新顾客（抽样后放大）",
    "cli.col.new_customers": "新顾客",
    "cli.campaign.row": "{id}  {name}  {start}..{end}  {status}  {goal}  {target}  {merchants}",
    "cli.campaign.created": "已创建活动 {id}：{name}，{start}..{end}（图版本 {version}）",
    "cli.campaign.joined": "{merchant} 已加入活动 {id}（图版本 {version}）",
    "cli.book.done": "已为 {merchant} 预订 {written}，{start}..{end}（图版本 {version}）",
    "cli.book.repeat": "已预订过：{ids}（未写入）",
    "cli.release.done": "已释放 {released}（图版本 {version}）",
    "cli.release.none": "未释放任何预订：这些预订均不存在（图版本 {version}）",
    "cli.growth.head": (
        "增长计划 {first}..{last}：{merchants}有望年销 {mgoal}，{talents}有望年销 {tgoal}"
    ),
    "cli.growth.backtest": (
        "预测留出 {months}：WAPE {ours}（去年同期法 {naive}）；"
        "全市场合计偏差 {bias}（去年同期法 {naive_bias}）"
    ),
    "cli.growth.owners": "{who}（先列有望达标的，再按差距从小到大）：",
    "cli.growth.merchants": "商家",
    "cli.growth.talents": "达人",
    "cli.growth.outlook": (
        "近 12 个月已实现 {realised}；未来 12 个月（{first}..{last}）：预测 {forecast}，"
        "已预订档期 {slots} 个，预期 {booked}（与预测并列，不相加；是否达标取两者中较大者）"
    ),
    "cli.growth.later": "另有 {slots} 个已预订档期在 {last} 之后开始，未计入以上数字",
    "cli.growth.owner": (
        "{id}：近 12 个月 {past}；未来 12 个月预测 {ahead}，已预订 {booked}"
        "（{slots} 个档期）；差距 {gap}（{basis}）"
    ),
    "cli.growth.basis.forecast": "按预测",
    "cli.growth.basis.booked": "按预订",
    "cli.growth.pairings": "最能缩小差距的搭配：",
    "cli.growth.pairing": "{merchant} + {talent}：单次合作 {gmv}，缩小差距 {closed}",
    "fact.channel.field": "自播",
    "fact.channel.alliance": "达人矩阵",
    "fact.channel.campaign": "营销活动",
    "fact.channel.top_kol": "头部达人",
    "fact.field.no_room": "自播：没有自己的直播间",
    "fact.field.no_sales": "自播：直播间没有可供学习的带货场次",
    "fact.field.curve": (
        "自播：目前每月 {now:.1f} 场，每场 {cost}；月 GMV 随场次的 {b:.2f} 次方增长"
        "（{own:.0%} 来自其自身月份）；再加 {added} 场带来 {gmv}，最后一场每元回报 "
        "¥{last:.2f}，下一场 ¥{next:.2f}"
    ),
    "fact.field.curve_none": (
        "自播：目前每月 {now:.1f} 场，每场 {cost}；月 GMV 随场次的 {b:.2f} 次方增长"
        "（{own:.0%} 来自其自身月份）；再加一场每元回报 ¥{next:.2f}"
    ),
    "fact.talents.none": "{channel}：无可规划的达人（{why}）",
    "fact.why.cheapest": "；最便宜的合规达人需 {cheapest}",
    "fact.why.no_talents": "图中没有达人",
    "fact.why.max_talents": "商家的达人上限为 {n} 位",
    "fact.talents.no_candidate": "{channel}：本层级没有回报抵得上成本的合规达人",
    "fact.talents.chosen": (
        "{channel}：{talents} 位达人，花费 {spend}，预期 {gmv}；最后一位每元回报 "
        "¥{last:.2f}，下一位最佳 ¥{next:.2f}"
    ),
    "fact.talents.unbought": (
        "{channel}：未投入；最佳一步每元回报 ¥{best:.2f}（下限 ¥{floor:.2f}），"
        "或超出剩余预算，或已达达人上限"
    ),
    "fact.campaign.none": "营销活动：已加入的活动均不在 {window} 内",
    "fact.campaign.no_products": "营销活动 {campaign}：已加入，但未报名任何商品",
    "fact.campaign.lift": "营销活动 {campaigns}：全市场活动期间销售额为前后日子的 {lift:.2f}x",
    "fact.unspent.floor": "剩余 {left}：再投入每元回报均不足 ¥{floor:.2f}",
    "fact.unspent.max_talents": "剩余 {left}：已达达人上限 {n} 位",
    "fact.unspent.capped": (
        "剩余 {left}：余额内值得投入的步骤（最便宜的需 {cheapest}）所在渠道已达其预算份额"
    ),
    "fact.unspent.too_dear": "剩余 {left}：值得投入的下一步都超出余额（最便宜的需 {cheapest}）",
    "fact.field.full": (
        "自播：目前每月 {now:.1f} 场，每场 {cost}；月 GMV 随场次^{b:.2f} 增长；加开 {added} 场"
        "带来 {gmv}，窗口内已排满（每天至多 {most} 场）"
    ),
    "providers.evidence.count": "已完成合作 {engagements} 次，其中您类目中的其他商家 {mine} 次",
    "providers.evidence.too_few": "您类目中的商家过少，不显示其效果（少于 {minimum} 家）",
    "providers.evidence.median": "您类目中 GMV 提升中位数 {lift}",
    "providers.evidence.price": "报价每 {days} 天 {price}",
    "cli.providers.head": "{merchant} 的服务商（按其类目中扣除大盘变化后的预期 GMV 提升排序）",
    "cli.providers.row": (
        "{rank:>3}. {provider} {name}（{kind}）：预期提升 {lift}，合作 {engagements} 次，"
        "其中您的类目 {in_categories} 次；{median}；每 30 天 {price}{per_yuan}"
    ),
    "cli.providers.too_few": "您类目中的合作过少，不显示中位数（少于 {minimum} 次）",
    "cli.providers.median": "您类目中提升中位数 {lift}",
    "cli.providers.per_yuan": "，每元服务费约多带来 ¥{x:.2f} GMV",
    "cli.providers.none": "没有可排序的服务商",
    "cli.provider_leads.head": "{provider} 最适合服务的商家（按其预期提升排序）",
    "cli.provider_leads.row": "{rank:>3}. {merchant} {name}（{categories}）：预期提升 {lift}",
    "cli.provider_leads.none": "没有可推荐的商家",
    "cli.fact.head": (
        "{merchant} 的预算分配（自播、达人矩阵、活动、头部达人），{start}..{end}："
        "花费 {spent}（预算 {budget}），预期 {gmv}"
    ),
    "cli.fact.channel": "{channel}：{spend}，预期 {gmv}，ROI {roi}，最后一元回报 ¥{last:.2f}",
    "cli.fact.sessions": "加开 {added} 场，每场 {cost}（窗口内现有 {now:.1f} 场）",
    "cli.fact.lift": "活动提升 {lift:.2f}x；下限每元 GMV ¥{floor:.2f}",
    "cli.na": "不适用",
    "cli.window.the coming period": "下一周期（{start}..{end}）",
    "cli.window.the window": "所选时段（{start}..{end}）",
    "cli.window.campaign": "活动 {id}（{start}..{end}）",
    "cli.plan.note.gmv": (
        "预期 GMV ×（1 − 风险）+ 每位加权去重目标用户 {value}"
        "（市场中有合作成果可学：GMV 率 {rate}）"
    ),
    "cli.plan.note.target_reach": "触达的去重目标用户（{audience}）：{why}",
    "cli.plan.audience": (
        "顾客 {customers} 名，另有品类买家 {buyers} 名、兴趣用户 {interested} 名、"
        "PageRank 相似用户 {lookalikes} 名"
    ),
    "cli.plan.why.no_rate": "市场中没有可供学习的合作 GMV（GMV 率为 0）",
    "cli.plan.why.no_gmv": "没有候选达人对该商家的商品有预期 GMV",
    "cli.plan.fee_rule.median": (
        "每位平台粉丝 {rate}：有{quote}记录的 {n} 位达人每位粉丝{quote}的中位数"
        "（至少 {floor}，即记录中最便宜的{quote}）"
    ),
    "cli.plan.fee_rule.default": (
        "每位平台粉丝 {rate}（生成市场的默认费用模型；至少 {floor}）：本市场没有{quote}记录"
    ),
    "cli.plan.quote.fee": "费用",
    "cli.plan.quote.list price": "标价",
    "cli.plan.tie_break": "平台粉丝多者优先，其次按达人 id",
    "cli.plan.unspent.none_fits": "剩余 {left}：没有其他合规达人的报价在 {left} 以内",
    "cli.plan.unspent.cheapest": "；剩下最便宜的需 {cheapest}",
    "cli.plan.unspent.max_talents": "剩余 {left}：已达达人上限 {n} 位",
    "cli.plan.unspent.floor": "剩余 {left}：其他达人的回报均不足 {floor}",
    "cli.plan.unspent.nothing": "剩余 {left}：其他达人既不增加预期 GMV，也不带来新的目标用户",
    "cli.plan.unspent.only": "剩余 {left}：余额内可负担的 {talents}：{reason}",
    "cli.plan.unspent.several": "剩余 {left}：余额内可负担的 {talents}中，{parts}",
    "reason.item": "{reason} {n}",
    "reason.sep": "、",
    "reason.compliance": "合规排除",
    "reason.no free slot": "无空闲档期",
    "reason.booked by a competitor": "已被竞品预订",
    "reason.already held by the merchant": "商家已预订",
    "reason.no list price": "无标价",
    "reason.fee over the budget": "报价超出预算",
    "reason.below the candidate cut": "未进入候选",
    "reason.not chosen by the solver": "求解器未选",
    "reason.add nothing": "无增益（无预期 GMV，无新目标用户）",
    "reason.return below": "回报低于 {floor}",
    "reason.tier full": "{tier}层级已满（{talents}）",
    "reason.tier share": "{tier}层级已达其预算份额 {share}",
    "reason.max_talents": "已达达人上限 {n} 位",
    "reason.not in the campaign": "未参加该活动",
    "reason.no products": "无商品",
    "reason.no eligible products": "无合规商品",
    "reason.no eligible talent": "无合规达人",
    "reason.return below the floor": "回报低于下限",
    "cli.campaign.status.upcoming": "未开始",
    "cli.campaign.status.running": "进行中",
    "cli.campaign.status.over": "已结束",
    "cli.campaign.goal.gmv": "GMV",
    "cli.campaign.goal.new_customers": "新顾客",
    "cli.campaign.goal.reach": "触达",
    "cli.book.campaign_or_dates": (
        "档期请用 {by_campaign} 或 {by_dates} 之一给出，不可同时给出（收到 {got}）"
    ),
}

#: One catalogue per language of :data:`LANGS`: the same keys, the same placeholders.
MESSAGES: dict[str, dict[str, str]] = {"en": _EN, "zh-CN": _ZH}

#: Nouns :func:`count` knows: English singular -> (English plural, Chinese measure + noun).
NOUNS: dict[str, tuple[str, str]] = {
    "talent": ("talents", "位达人"),
    "merchant": ("merchants", "个商家"),
    "user": ("users", "名用户"),
    "target user": ("target users", "名目标用户"),
    "sampled user": ("sampled users", "名抽样用户"),
    "customer": ("customers", "名顾客"),
    "follow": ("follows", "条关注"),
    "row": ("rows", "行"),
    "valid row": ("valid rows", "行有效数据"),
    "file": ("files", "个文件"),
    "node": ("nodes", "个节点"),
    "relationship": ("relationships", "条关系"),
    "pair": ("pairs", "对"),
    "candidate": ("candidates", "个候选"),
    "candidate pair": ("candidate pairs", "个候选对"),
    "blocking pair": ("blocking pairs", "个阻塞对"),
    "estimated fee": ("estimated fees", "项估算费用"),
    "estimated quote": ("estimated quotes", "项估算报价"),
    "shared audience member": ("shared audience members", "名共同受众"),
    "audience member": ("audience members", "名受众"),
    "tie": ("ties", "处并列"),
    "type": ("types", "个类型"),
    "collaboration": ("collaborations", "次合作"),
    "category": ("categories", "个品类"),
    "problem": ("problems", "个问题"),
    "campaign": ("campaigns", "个活动"),
    "booking": ("bookings", "个预订"),
}

#: Chinese names of the categories kolmatch's markets use, by id and by name: the synthetic
#: market's (``cat00`` .. ``cat19``, kolmatch/loaders/synthetic.py), the Steam genres of the
#: twitch-it data set, the one category of musae-twitch-de and the "other" bucket of
#: twitch-follows (kolmatch/evaluation/real.py, kolmatch/loaders/twitch.py). A game of the
#: twitch data sets has no entry: its own name is shown.
CATEGORY_NAMES: dict[str, str] = {
    "Beauty": "美妆",
    "Fashion": "服饰",
    "Food": "食品",
    "Home": "家居",
    "Electronics": "电子产品",
    "Baby": "母婴",
    "Sports": "运动",
    "Books": "图书",
    "Pets": "宠物",
    "Health": "健康",
    "Jewelry": "珠宝",
    "Outdoor": "户外",
    "Toys": "玩具",
    "Auto": "汽车",
    "Digital": "数码",
    "Snacks": "零食",
    "Tea": "茶饮",
    "Liquor": "酒类",
    "Furniture": "家具",
    "Gaming": "游戏",
    # Steam genres (twitch-it)
    "Action": "动作",
    "Adventure": "冒险",
    "Casual": "休闲",
    "Indie": "独立",
    "RPG": "角色扮演",
    "Simulation": "模拟",
    "Strategy": "策略",
    "Racing": "竞速",
    "Massively Multiplayer": "大型多人在线",
    "Free to Play": "免费游戏",
    "Early Access": "抢先体验",
    "Twitch DE": "Twitch 德国",
    "twitch-de": "Twitch 德国",
    "other": "其他",
}
#: The synthetic market's category ids, in the order of its names above.
_SYNTHETIC_IDS = {f"cat{c:02d}": name for c, name in enumerate(list(CATEGORY_NAMES)[:20])}


def placeholders(template: str) -> set[str]:
    """The names a template formats (without their format specs).

    Examples
    --------
    >>> sorted(placeholders("{n:,} of {total} ({share:.0%})"))
    ['n', 'share', 'total']
    """
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def message(key: str, lang: str = DEFAULT_LANG, /, **values: object) -> str:
    """The catalogue's template ``key`` in ``lang``, formatted with ``values``.

    A language without the key falls back to English (the catalogue test keeps them equal).

    Parameters
    ----------
    key
        A key of :data:`MESSAGES`.
    lang
        One of :data:`LANGS`.
    **values
        The template's placeholders.

    Raises
    ------
    KeyError
        If no catalogue has ``key`` (a bug: keys are written in the code).

    Examples
    --------
    >>> message("evidence.customers", "en", reached=12, customers=1500)
    "12 of this merchant's 1,500 customers follow or engage with this talent"
    >>> message("evidence.customers", "zh-CN", reached=12, customers=1500)
    '本商家 1,500 名顾客中有 12 名关注或互动过该达人'
    """
    template = MESSAGES.get(lang, _EN).get(key)
    if template is None:
        template = _EN[key]
    return template.format(**values)


def resolve_lang(cli_flag: str | None, env: Mapping[str, str] | None = None) -> str:
    """The command line's language: ``--lang``, else ``KOLMATCH_LANG``, else English.

    Case and ``_`` for ``-`` do not matter, and a bare ``zh`` means ``zh-CN``.

    Parameters
    ----------
    cli_flag
        The ``--lang`` value, None when not given.
    env
        The environment (``os.environ``); None reads none.

    Returns
    -------
    str
        One of :data:`LANGS`.

    Raises
    ------
    BadArgument
        Naming ``--lang`` or ``KOLMATCH_LANG``, whichever holds a language kolmatch does not
        write.

    Examples
    --------
    >>> resolve_lang(None, {}), resolve_lang("zh_cn", {}), resolve_lang(None, {LANG_ENV: "zh"})
    ('en', 'zh-CN', 'zh-CN')
    >>> resolve_lang("en", {"KOLMATCH_LANG": "fr"})
    'en'
    >>> try:
    ...     resolve_lang(None, {"KOLMATCH_LANG": "fr"})
    ... except BadArgument as exc:
    ...     print(exc)
    argument KOLMATCH_LANG: unknown language 'fr'; kolmatch writes en, zh-CN
    """
    source, text = ("--lang", cli_flag) if cli_flag is not None else (LANG_ENV, None)
    if text is None:
        text = (env or {}).get(LANG_ENV)
        if not text:  # unset or empty: the default, as an unset variable
            return DEFAULT_LANG
    lang = {"en": "en", "zh-cn": "zh-CN", "zh": "zh-CN"}.get(text.strip().lower().replace("_", "-"))
    if lang is None:
        raise BadArgument(source, f"unknown language {text!r}; kolmatch writes {', '.join(LANGS)}")
    return lang


#: English units above a million: (size, suffix). Below, whole yuan with separators.
_EN_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"))
#: Chinese units: 万 (1e4), 亿 (1e8), 万亿 (1e12). Below 1万, whole yuan with separators.
_ZH_UNITS = ((1e12, "万亿"), (1e8, "亿"), (1e4, "万"))


def format_amount(yuan: float, lang: str = DEFAULT_LANG, *, cents: bool = False) -> str:
    """An amount of yuan as a reader of ``lang`` reads it.

    English: whole yuan with thousands separators below a million (``¥12,345``), then one
    decimal of millions, billions and trillions (``¥1.2M``, ``¥3.4B``, ``¥5.6T``). Chinese:
    whole yuan below 1万 (``¥1,234``), then one decimal of 万, 亿 and 万亿 (``¥12.3万``,
    ``¥1.2亿``, ``¥1.0万亿``). Beyond 1,000 of the largest unit: scientific (``¥1.0e+30``),
    never a 30-digit string. Negative amounts keep their sign in front (``-¥1.2M``); an
    amount that is not a finite number is ``-``.

    Parameters
    ----------
    yuan
        The amount.
    lang
        One of :data:`LANGS`.
    cents
        Show fen below the first unit (``¥892.33``): for a price per user or per follower,
        where whole yuan would hide the figure.

    Examples
    --------
    >>> [format_amount(x) for x in (0, 1234.4, 1_234_567, 3.4e9, 1e30)]
    ['¥0', '¥1,234', '¥1.2M', '¥3.4B', '¥1.0e+30']
    >>> [format_amount(x, "zh-CN") for x in (1234, 123_456, 1.2e8, 1e12, -5e4)]
    ['¥1,234', '¥12.3万', '¥1.2亿', '¥1.0万亿', '-¥5.0万']
    >>> format_amount(892.333, cents=True), format_amount(2e30, "zh-CN", cents=True)
    ('¥892.33', '¥2.0e+30')
    """
    x = float(yuan)
    if not math.isfinite(x):
        return "-"
    sign, x = ("-" if x < 0 else ""), abs(x)
    units = _ZH_UNITS if lang == "zh-CN" else _EN_UNITS
    # a unit counts up to 1,000 of itself in English and 10,000 in Chinese (万 to 亿)
    base = 1e4 if lang == "zh-CN" else 1e3
    if round(x) < units[-1][0]:
        return f"{sign}¥{x:,.2f}" if cents else f"{sign}¥{x:,.0f}"
    for size, suffix in reversed(units):
        shown = round(x / size, 1)  # rounded first: 99,999,990 is ¥1.0亿, not ¥10000.0万
        if shown < base:
            return f"{sign}¥{shown:.1f}{suffix}"
    return f"{sign}¥{x:.1e}"


def count(n: int, noun: str, lang: str = DEFAULT_LANG) -> str:
    """``n`` and its noun, agreeing: ``1 talent``, ``2 talents``, ``2 位达人``.

    Nouns of :data:`NOUNS` have their plurals and Chinese forms there; another noun takes an
    ``s`` in English and is shown as given in Chinese.

    Parameters
    ----------
    n
        How many.
    noun
        The English singular.
    lang
        One of :data:`LANGS`.

    Examples
    --------
    >>> count(1, "talent"), count(2, "talent"), count(0, "blocking pair"), count(1500, "row")
    ('1 talent', '2 talents', '0 blocking pairs', '1,500 rows')
    >>> count(3, "talent", "zh-CN"), count(1, "category"), count(2, "category")
    ('3 位达人', '1 category', '2 categories')
    """
    plural, zh = NOUNS.get(noun, (noun + "s", noun))
    if lang == "zh-CN":
        return f"{n:,} {zh}"
    return f"{n:,} {noun if n == 1 else plural}"


def category_name(category: str, lang: str = DEFAULT_LANG) -> str:
    """A category's name for a reader of ``lang``.

    English is the market's own name, as given. Chinese: the name of :data:`CATEGORY_NAMES`
    for a known name or a synthetic market's id (``cat04``); an unknown category as given.

    Examples
    --------
    >>> category_name("Beauty", "zh-CN"), category_name("cat04", "zh-CN"), category_name("Beauty")
    ('美妆', '电子产品', 'Beauty')
    >>> category_name("Just Chatting", "zh-CN")
    'Just Chatting'
    """
    if lang != "zh-CN":
        return category
    name = _SYNTHETIC_IDS.get(category, category)
    return CATEGORY_NAMES.get(name, name)


def negotiate(header: str | None) -> str:
    """The best of :data:`LANGS` for an ``Accept-Language`` header (``en`` when none fits).

    Parameters
    ----------
    header
        The header's value, e.g. ``"zh-CN,zh;q=0.9,en;q=0.8"``; ``None`` or empty for none.

    Returns
    -------
    str
        ``"zh-CN"`` for any Chinese tag ranked above English, else ``"en"``.

    Examples
    --------
    >>> negotiate("zh-CN,zh;q=0.9,en;q=0.8"), negotiate("en-GB"), negotiate("fr, zh;q=0.5")
    ('zh-CN', 'en', 'zh-CN')
    >>> negotiate(None), negotiate("q=;;,")
    ('en', 'en')
    """
    best, best_q = DEFAULT_LANG, -1.0
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        lang = {"zh": "zh-CN", "en": "en"}.get(primary)
        if lang is not None and q > best_q and q > 0:
            best, best_q = lang, q
    return best
