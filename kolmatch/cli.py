"""The command line: parses arguments, calls the packages, prints.

Exit codes: 0 ok; 2 bad input (an argument, a file or folder given, an id); 1 any other failure
(a store missing, unreachable or holding no market, a port in use, the disk); 130 interrupted
(Ctrl-C). A failure ends in one line on stderr, ``kolmatch: what is wrong`` (import files with
several problems list them one a line), and leaves no half-written file behind.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from kolmatch import jsonio
from kolmatch.errors import (
    BadArgument,
    InfeasiblePlan,
    InputError,
    KolmatchError,
    LimitExceeded,
    NotEligible,
    StoreError,
    StoreUnavailable,
    UnknownId,
)

if TYPE_CHECKING:
    from kolmatch.graph.store import GraphStore
    from kolmatch.matching.features import MarketFeatures

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
#: Ctrl-C: 128 + SIGINT, the code shells report for a process that SIGINT ended.
EXIT_INTERRUPTED = 130
#: Neo4j retry window of `kolmatch serve` (see Neo4jStore's retry_seconds).
API_NEO4J_RETRY_SECONDS = 3.0


def _int_in(low: int, high: int | None, what: str, bound: str) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``), else the flag's error."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if n < low or (high is not None and n > high):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {n}")
        return n

    return parse


_positive_int = _int_in(1, None, "a whole number", "at least 1")
_non_negative_int = _int_in(0, None, "a whole number", "0 or more")
_port = _int_in(1, 65535, "a port number", "a port number from 1 to 65535")


def _non_negative_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= x < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return x


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return x


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        help="store URI: sqlite:///PATH (default sqlite:///./kolmatch.db, "
        "or KOLMATCH_STORE) or neo4j://HOST:PORT (NEO4J_USER / NEO4J_PASSWORD)",
    )


def _parser() -> argparse.ArgumentParser:
    from kolmatch.evaluation.real import DATASETS as REAL_DATASETS
    from kolmatch.loaders.synthetic import SCALES

    p = argparse.ArgumentParser(prog="kolmatch", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic market in the import format")
    g.add_argument("--scale", choices=list(SCALES), default="tiny")
    g.add_argument("--seed", type=_non_negative_int, default=0)
    g.add_argument("--out", type=Path, required=True, help="folder for the import files")
    g.add_argument("--truth", type=Path, help="folder for the latent truth (default OUT-truth)")
    g.add_argument(
        "--force", action="store_true", help="replace OUT and the truth folder if not empty"
    )

    ld = sub.add_parser("load", help="validate a folder of import files and load it")
    ld.add_argument("folder", type=Path)
    ld.add_argument(
        "--replace-unfinished",
        action="store_true",
        help="Neo4j: start although another load is unfinished, forgetting it (it is dead and "
        "will not be run again; what it wrote stays and this load merges over it)",
    )
    _store_arg(ld)

    imf = sub.add_parser(
        "import-files",
        help="validate a folder and write it as input of Neo4j's offline importer "
        "(a first load into an empty database; scripts/neo4j import runs it)",
    )
    imf.add_argument("folder", type=Path)
    imf.add_argument("out", type=Path, help="folder for the importer's CSVs and import.args")

    sc = sub.add_parser(
        "schema", help="create the store's constraints and indexes (after an offline import)"
    )
    _store_arg(sc)
    mg = sub.add_parser(
        "migrate", help="bring a store written by an older kolmatch to this one's store format"
    )
    _store_arg(mg)

    st = sub.add_parser("stats", help="nodes per label and relationships per type")
    _store_arg(st)
    st.add_argument("--json", action="store_true")

    mt = sub.add_parser("match", help="rank talents for a merchant, with evidence")
    mt.add_argument("merchant")
    mt.add_argument("--top", type=_positive_int, default=20)
    mt.add_argument("--campaign", help="rank for this campaign's window (free slots, exclusivity)")
    mt.add_argument(
        "--budget",
        type=_positive_float,
        help="yuan: leave out talents priced above it (default: mark those above the "
        "merchant's own budget)",
    )
    mt.add_argument("--json", action="store_true")
    _store_arg(mt)

    wy = sub.add_parser("why", help="why a talent is or is not in a merchant's match list")
    wy.add_argument("merchant")
    wy.add_argument("talent")
    wy.add_argument("--top", type=_positive_int, default=20, help="the list's length")
    wy.add_argument("--campaign", help="as in `kolmatch match`")
    wy.add_argument("--budget", type=_positive_float, help="as in `kolmatch match`")
    wy.add_argument("--json", action="store_true")
    _store_arg(wy)

    pl = sub.add_parser("plan", help="choose a talent matrix for a merchant under a budget")
    pl.add_argument("merchant")
    pl.add_argument("--budget", type=_positive_float, required=True, help="yuan for fees")
    pl.add_argument(
        "--tiers",
        help="tier mix, e.g. top=1,mid=2..5,micro=30%% (exact count, range, budget share)",
    )
    pl.add_argument("--campaign", help="plan for this campaign's window")
    pl.add_argument(
        "--min-roi",
        type=_non_negative_float,
        help="least expected return per talent, net of commission (default 1.0 where GMV can "
        "be estimated; 0: no floor)",
    )
    pl.add_argument("--candidates", type=_positive_int, default=5_000)
    pl.add_argument("--sample-users", type=_positive_int, default=50_000)
    pl.add_argument("--seed", type=_non_negative_int, default=0)
    pl.add_argument("--json", action="store_true")
    _store_arg(pl)

    asg = sub.add_parser("assign", help="assign the whole market's talents for one window")
    asg.add_argument("--method", choices=["auto", "milp", "lagrangian", "stable"], default="auto")
    asg.add_argument("--proposing", choices=["merchants", "talents"], default="merchants")
    asg.add_argument("--candidates", type=_positive_int, default=10, help="per merchant")
    asg.add_argument("--agency-cap", type=_positive_int, default=3, help="per merchant")
    asg.add_argument("--campaign", help="assign for this campaign's window")
    asg.add_argument(
        "--time-limit",
        type=_positive_float,
        default=50.0,
        help="wall-clock safety net in seconds: the MILP's work is limited by a node count "
        "(the same answer on every run); an answer the clock cuts short says so",
    )
    asg.add_argument("--out", type=Path, help="write the assignment as JSON to this file")
    asg.add_argument("--json", action="store_true")
    _store_arg(asg)

    si = sub.add_parser(
        "similar", help="talents whose audiences (followers and engaged users) look like this one's"
    )
    si.add_argument("talent")
    si.add_argument("--top", type=_positive_int, default=10)
    si.add_argument("--json", action="store_true")
    _store_arg(si)

    ov = sub.add_parser("overlap", help="engaged-audience overlap of two talents")
    ov.add_argument("talent_a")
    ov.add_argument("talent_b")
    ov.add_argument("--json", action="store_true")
    _store_arg(ov)

    le = sub.add_parser("leads", help="merchants a talent (or a roster) should approach")
    le.add_argument("talents", nargs="+", help="one talent id, or a roster's ids")
    le.add_argument("--top", type=_positive_int, default=10)
    le.add_argument("--json", action="store_true")
    _store_arg(le)

    ev = sub.add_parser("evaluate", help="score rankings against a synthetic market's latent truth")
    ev.add_argument("--truth", type=Path, required=True, help="the market's -truth folder")
    ev.add_argument("--merchants", type=_positive_int, default=100, help="merchants to sample")
    ev.add_argument("--top", type=_positive_int, default=20)
    ev.add_argument("--json", action="store_true")
    _store_arg(ev)

    er = sub.add_parser(
        "evaluate-real",
        help="held-out real data (Twitch): the engine against the rankings a user would try",
    )
    er.add_argument("--data", type=Path, required=True, help="the folder holding the data sets")
    er.add_argument("--datasets", nargs="+", choices=REAL_DATASETS, default=list(REAL_DATASETS))
    er.add_argument("--split", choices=("test", "validation"), default="test")
    er.add_argument("--seed", type=_non_negative_int, default=0)
    er.add_argument("--work", type=Path, help="keep the converted folders and stores here")
    er.add_argument("--json", action="store_true")

    ir = sub.add_parser(
        "import-real", help="write a public data set (Twitch) as an import folder to load"
    )
    ir.add_argument("dataset", choices=REAL_DATASETS)
    ir.add_argument("src", type=Path, help="the data set's folder of raw files")
    ir.add_argument("out", type=Path, help="import folder to write (must not exist)")

    sv = sub.add_parser("serve", help="serve the GraphQL API at /graphql")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=_port, default=8000)
    sv.add_argument("--keys", type=Path, help="JSON file of API keys (or KOLMATCH_API_KEYS)")
    sv.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes (each loads the features)",
    )
    _store_arg(sv)

    d = sub.add_parser("demo", help="generate a market, load it into the embedded store, summarise")
    d.add_argument("--scale", choices=list(SCALES), default="tiny")
    d.add_argument("--seed", type=_non_negative_int, default=7)
    d.add_argument("--dir", type=Path, default=Path(".kolmatch/demo"), help="working folder")
    d.add_argument("--no-serve", action="store_true", help="stop after the summary")
    d.add_argument("--port", type=_port, default=8000, help="the API's port (make demo PORT=...)")
    return p


def _print_counts(counts: dict[str, int]) -> None:
    width = max(len(k) for k in counts)
    for k, v in counts.items():
        print(f"  {k:<{width}}  {v:>12,}")


#: What matching cannot do without (kolmatch/matching/features.py), and the file that adds it.
_MATCHING_NEEDS = {"Talent": "talent.csv", "Category": "category.csv"}


def _sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store URI; None for another kind of store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _open_graph(store_arg: str | None) -> GraphStore:
    """Open the store a reading command reads; it must exist and hold a kolmatch graph.

    Nothing is created: a SQLite path naming no file is refused before SQLite would make an
    empty one.

    Raises
    ------
    StoreUnavailable
        If the store file does not exist (or is a folder).
    StoreError
        If it holds no kolmatch graph (and as ``open_store``).
    """
    from kolmatch.graph.open import DEFAULT_STORE, open_store, store_uri

    uri = store_uri(store_arg)
    path = _sqlite_path(uri)
    load_first = f"load a market into it first: kolmatch load DIR --store {uri}"
    if path is not None and path.is_dir():
        raise StoreUnavailable(f"{uri}: {path} is a folder; name a file (sqlite:///{path}/k.db)")
    if path is not None and not path.exists():
        default = " (the default: --store or KOLMATCH_STORE names another)"
        raise StoreUnavailable(
            f"no store at {path}{default if uri == DEFAULT_STORE else ''}; {load_first}"
        )
    store = open_store(uri)
    fmt = getattr(store, "format", None)  # SQLite records one; Neo4j is schemaless
    if fmt is not None and fmt() is None:
        store.close()
        raise StoreError(f"{uri} holds no kolmatch graph; {load_first}")
    return store


def _missing_for_matching(counts: dict[str, int]) -> list[str]:
    return [label for label in _MATCHING_NEEDS if not counts.get(label)]


def _check_matchable(store: GraphStore) -> None:
    """Refuse, saying what to load, a graph that features cannot be built from (a partial
    import: talents, products and collaborations but no categories)."""
    missing = _missing_for_matching(
        {label: len(store.node_rows(label, []).ids) for label in _MATCHING_NEEDS}
    )
    if missing:
        files = ", ".join(_MATCHING_NEEDS[m] for m in missing)
        raise StoreError(
            f"{store.uri} holds no {' and no '.join(missing)} nodes: matching needs talents "
            f"and categories; load the rest of the market ({files})"
        )


@contextmanager
def _file_written_whole(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write, renamed to ``path`` when the block ends
    without an error; removed otherwise (Ctrl-C too), so ``path`` is whole or untouched."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_out_file(path: Path, flag: str) -> None:
    """Refuse an output file path that cannot be a file, before any work is done."""
    if path.is_dir():
        raise BadArgument(flag, f"{path} is a folder; name a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadArgument(flag, f"{parent} is a file, not a folder")
            break


def _cmd_generate(a: argparse.Namespace) -> int:
    from kolmatch.loaders.synthetic import generate_market

    out = a.out.resolve() if a.out.name in ("", ".", "..") else a.out
    truth = a.truth or out.with_name(out.name + "-truth")
    for flag, folder in (("--out", out), ("--truth", truth)):
        if folder.exists() and not folder.is_dir():
            raise BadArgument(flag, f"{folder} is a file; name a folder")
        if not a.force and folder.is_dir() and any(folder.iterdir()):
            raise BadArgument(
                flag, f"{folder} is not empty; name a new folder, or pass --force to replace it"
            )
    t0 = time.perf_counter()
    truth = generate_market(a.scale, a.seed, out, truth, progress=True)
    print(
        f"wrote the {a.scale} market (seed {a.seed}) to {a.out} in "
        f"{time.perf_counter() - t0:.1f}s; latent truth in {truth}"
    )
    return EXIT_OK


def _cmd_load(a: argparse.Namespace) -> int:
    from kolmatch.graph.open import open_store, store_uri
    from kolmatch.loaders.load import load_folder

    uri = store_uri(a.store)
    path = _sqlite_path(uri)
    created = path is not None and not path.exists()
    store = open_store(uri)
    done = False
    try:
        before = _node_total(store)
        t0 = time.perf_counter()
        report = load_folder(
            a.folder, store, progress=True, replace_unfinished=a.replace_unfinished
        )
        dt = time.perf_counter() - t0
        print(
            f"loaded {report.total:,} rows from {len(report.rows)} files into {store.uri} "
            f"in {dt:.1f}s"
        )
        for note in report.notes:
            print(f"note: {note}")
        counts = store.counts()
        done = True
    finally:
        store.close()
        if created and not done and path is not None:  # a failed first load leaves no file
            for f in (path, path.with_name(path.name + "-journal")):
                f.unlink(missing_ok=True)
    _print_counts(counts)
    after = sum(v for k, v in counts.items() if not k.isupper())
    if before:
        print(
            f"note: {store.uri} already held {before:,} nodes; this load merged into them by id "
            f"({after - before:,} new): load each market into its own --store to keep them apart"
        )
    missing = _missing_for_matching(counts)
    if missing:
        files = ", ".join(_MATCHING_NEEDS[m] for m in missing)
        print(
            f"note: the store holds no {' and no '.join(missing)} nodes yet: match, plan, "
            f"assign and the other reading commands need them ({files})"
        )
    return EXIT_OK


def _node_total(store: GraphStore) -> int:
    """Nodes the store holds (0 for a store with no kolmatch graph yet)."""
    try:
        if store.version() == 0:  # never written: no counting (minutes of COUNT(*) at l)
            return 0
        counts = store.counts()
    except StoreError:
        return 0
    return sum(v for k, v in counts.items() if not k.isupper())


def _cmd_import_files(a: argparse.Namespace) -> int:
    import uuid

    from kolmatch.loaders.neo4j_import import ARGS_FILE, write_import_files

    if a.out.exists() and not a.out.is_dir():
        raise BadArgument("out", f"{a.out} is a file; name a folder")
    t0 = time.perf_counter()
    r = write_import_files(a.folder, a.out, uid=uuid.uuid4().hex, progress=True)
    print(
        f"wrote {r.report.total:,} valid rows from {len(r.report.rows)} files as importer input "
        f"in {r.folder} in {time.perf_counter() - t0:.1f}s; arguments in {r.folder / ARGS_FILE}"
    )
    _print_counts({**r.nodes, **r.relationships})
    return EXIT_OK


def _cmd_schema(a: argparse.Namespace) -> int:
    from kolmatch.graph.open import open_store, store_uri

    store = open_store(store_uri(a.store))
    try:
        t0 = time.perf_counter()
        store.ensure_schema()
        print(f"constraints and indexes of {store.uri} online in {time.perf_counter() - t0:.1f}s")
    finally:
        store.close()
    return EXIT_OK


def _cmd_migrate(a: argparse.Namespace) -> int:
    from kolmatch.graph.open import open_store, store_uri
    from kolmatch.graph.store import STORE_FORMAT

    uri = store_uri(a.store)
    path = _sqlite_path(uri)
    if path is not None and not path.is_file():
        raise StoreUnavailable(f"no store file at {path}: nothing to migrate")
    store = open_store(uri)
    try:
        fmt = getattr(store, "format", None)  # SQLite records one; Neo4j is schemaless
        before = fmt() if fmt is not None else None
        store.ensure_schema()
    finally:
        store.close()
    if fmt is None:
        print(f"{store.uri}: constraints and indexes in place (schemaless: nothing to migrate)")
        return EXIT_OK
    was = f"store format {before}" if before is not None else "no kolmatch graph"
    print(f"{store.uri}: {was} -> store format {STORE_FORMAT}")
    return EXIT_OK


def _cmd_stats(a: argparse.Namespace) -> int:
    store = _open_graph(a.store)
    try:
        counts = store.counts()
    finally:
        store.close()
    if a.json:
        print(jsonio.dumps(counts, indent=2))
    else:
        print(f"{store.uri}")
        _print_counts(counts)
    return EXIT_OK


def _features(store_arg: str | None) -> MarketFeatures:
    from kolmatch.engine import cached_features

    store = _open_graph(store_arg)
    try:
        store.version()  # an unfinished load is refused (IncompleteLoad) before any counting
        _check_matchable(store)
        return cached_features(store)
    finally:
        store.close()


def _cmd_match(a: argparse.Namespace) -> int:
    from kolmatch.matching.score import match_merchant

    matches = match_merchant(
        _features(a.store), a.merchant, top=a.top, campaign=a.campaign, budget=a.budget
    )
    if a.json:
        print(
            jsonio.dumps(
                {
                    "merchant": a.merchant,
                    "budget": a.budget,
                    "matches": [m.__dict__ for m in matches],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return EXIT_OK
    for m in matches:
        price = f"¥{m.price:,.0f}{'*' if m.price_estimated else ''}"
        mark = " (above budget)" if m.affordable is False else ""
        print(f"{m.rank:>3}. {m.talent:<12} score {m.score:+.3f}  price {price}{mark}")
        for e in m.evidence:
            print(f"       - {e}")
    if any(m.price_estimated for m in matches):
        print("  * estimated price: the talent quotes no list price")
    return EXIT_OK


def _cmd_why(a: argparse.Namespace) -> int:
    from kolmatch.matching.score import why_not

    w = why_not(
        _features(a.store),
        a.merchant,
        a.talent,
        top=a.top,
        campaign=a.campaign,
        budget=a.budget,
    )
    if a.json:
        print(jsonio.dumps(w.__dict__, ensure_ascii=False, indent=2))
    else:
        print(f"{w.reason}: {w.detail}")
    return EXIT_OK


def _cmd_plan(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from kolmatch.matching.plan import parse_tiers, plan_talent_matrix

    tiers = parse_tiers(a.tiers)  # before the features: a typo fails at once
    plan = plan_talent_matrix(
        _features(a.store),
        a.merchant,
        budget=a.budget,
        tiers=tiers,
        campaign=a.campaign,
        candidates=a.candidates,
        sample_users=a.sample_users,
        seed=a.seed,
        min_roi=a.min_roi,
    )
    if a.json:
        print(jsonio.dumps(asdict(plan), ensure_ascii=False, indent=2))
        return EXIT_OK
    print(
        f"talent matrix for {plan.merchant} in {plan.window}: {len(plan.talents)} talents, "
        f"¥{plan.cost:,.0f} of ¥{plan.budget:,.0f}"
    )
    print(f"  optimised: {plan.objective_kind} = {plan.objective_note}")
    print(f"  {'talent':<10} {'tier':<6} {'fee':>11} {'exp. GMV':>11} {'ROI':>6} {'new reach':>10}")
    for t in plan.talents:
        mark = "*" if t.fee_estimated else " "
        roi = f"{t.roi:.2f}x" if t.roi is not None else "-"
        print(
            f"  {t.talent:<10} {t.tier:<6} {t.fee:>10,.0f}{mark} {t.expected_gmv:>11,.0f} "
            f"{roi:>6} {t.marginal_reach:>10,}"
        )
    if plan.estimated_fees:
        print(f"  * {plan.estimated_fees:,} estimated fees (none on record): {plan.fee_note}")
    print(
        f"  unique target reach {plan.unique_reach:,} of {plan.target_users:,} target users; "
        f"expected GMV ¥{plan.expected_gmv:,.0f}"
    )
    if plan.roi is not None:
        floor = f"each talent at least {plan.min_roi:.2f}x" if plan.min_roi else "no floor"
        print(
            f"  ROI {plan.roi:.2f}x net of {plan.commission_rate:.0%} commission "
            f"(¥{plan.commission:,.0f} expected); {floor}"
        )
    if plan.max_talents is not None:
        print(f"  max_talents {plan.max_talents} (the merchant's)")
    if plan.unspent_note:
        print(f"  {plan.unspent_note}")
    stopped = {"node limit": ", at the node limit", "time limit": ", CUT SHORT by the time limit"}
    print(
        f"  objective {plan.objective:,.0f}, certified bound {plan.bound:,.0f}: gap "
        f"{plan.gap:.2%} ({plan.method}{stopped.get(plan.stopped, '')}, {plan.seconds:.2f}s, "
        f"{plan.candidates:,} candidates, {plan.sampled_users:,} sampled users)"
    )
    if not plan.reproducible:
        print("  not reproducible: the time limit cut the solver short; a re-run may differ")
    if plan.ties:
        print(f"  ties: {plan.ties:,} decided among equals by {plan.tie_break}")
    if plan.left_out:
        print("  left out: " + ", ".join(f"{v:,} {k}" for k, v in plan.left_out.items()))
    for o in plan.overlaps[:5]:
        print(
            f"  overlap {o.a}-{o.b}: {o.shared:,} shared audience members "
            f"({o.share_of_smaller:.0%} of the smaller audience)"
        )
    return EXIT_OK


def _cmd_assign(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from kolmatch.matching.market import assign_market

    if a.out is not None:
        _check_out_file(a.out, "--out")  # before minutes of solving, not after
    result = assign_market(
        _features(a.store),
        candidates=a.candidates,
        campaign=a.campaign,
        agency_cap=a.agency_cap,
        method=a.method,
        proposing=a.proposing,
        time_limit=a.time_limit,
    )
    doc = asdict(result)
    doc["pairs"] = [
        {"merchant": m, "talent": t, "expected_value": v, "fee": fee}
        for m, t, v, fee in result.pairs
    ]
    text = jsonio.dumps(doc, ensure_ascii=False, indent=2)
    if a.out:
        # written whole, then renamed: a crash never leaves half a file in its place
        with _file_written_whole(a.out) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
    if a.json:
        print(text)
        return EXIT_OK
    gap = "n/a (stable)" if result.gap != result.gap else f"{result.gap:.2%}"
    print(
        f"assigned {len(result.pairs):,} pairs to {result.merchants_served:,} merchants in "
        f"{result.window}: total expected value ¥{result.objective:,.0f}, bound "
        f"¥{result.bound:,.0f}, gap {gap}"
    )
    print(
        f"  {result.method}: {result.seconds:.1f}s solving, {result.build_seconds:.1f}s building "
        f"{result.candidates:,} candidate pairs; {result.blocking_pairs:,} blocking pairs"
    )
    if result.merchants_below_minimum:
        print(f"  {len(result.merchants_below_minimum):,} merchants below their minimum")
    if result.left_out_merchants:
        print(
            "  merchants left out: "
            + ", ".join(f"{v:,} {k}" for k, v in result.left_out_merchants.items())
        )
    if a.out:
        print(f"  written to {a.out}")
    return EXIT_OK


def _cmd_similar(a: argparse.Namespace) -> int:
    from kolmatch.matching.audience import similar_talents
    from kolmatch.matching.eligibility import talent_eligibility

    f = _features(a.store)
    rows, sims = similar_talents(
        f.audience, f.talent_row(a.talent), top=a.top, eligible=talent_eligibility(f).ok
    )
    out = [
        {"talent": str(f.talent_ids[r]), "similarity": round(float(s), 4)}
        for r, s in zip(rows, sims, strict=True)
    ]
    if a.json:
        print(jsonio.dumps({"talent": a.talent, "similar": out}, indent=2))
    else:
        for i, o in enumerate(out, 1):
            print(f"{i:>3}. {o['talent']:<12} audience cosine {o['similarity']:.3f}")
    return EXIT_OK


def _cmd_overlap(a: argparse.Namespace) -> int:
    from kolmatch.matching.audience import overlap

    f = _features(a.store)
    o = overlap(f.audience, f.talent_row(a.talent_a), f.talent_row(a.talent_b))
    if a.json:
        print(jsonio.dumps({"a": a.talent_a, "b": a.talent_b, **o.__dict__}, indent=2))
    else:
        print(
            f"{a.talent_a} and {a.talent_b} share {o.shared:,} audience members (followers or "
            f"engaged users): "
            f"{o.share_of_smaller:.1%} of the smaller audience, Jaccard {o.jaccard:.3f}"
        )
    return EXIT_OK


def _cmd_leads(a: argparse.Namespace) -> int:
    from kolmatch.matching.talent_side import recommend_merchants

    talents = list(dict.fromkeys(a.talents))  # a talent named twice counts once
    leads = recommend_merchants(_features(a.store), talents, top=a.top)
    if a.json:
        print(jsonio.dumps({"talents": talents, "leads": [x.__dict__ for x in leads]}, indent=2))
    else:
        for x in leads:
            gmv = (
                f"expected GMV ¥{x.expected_gmv:,.0f} per collaboration"
                + (f", ROI {x.roi:.1f}x" if x.roi is not None else "")
                if x.expected_gmv > 0
                else "expected GMV not estimated"
            )
            print(
                f"{x.rank:>3}. {x.merchant:<10} {gmv}; reaches {x.customers_reached:,} of its "
                f"{x.customers:,} customers; lead with {x.best_product}"
            )
    return EXIT_OK


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from kolmatch.evaluation.synthetic import evaluate, load_truth

    if not (a.truth / "talents.npz").is_file():  # before the features, which may take a while
        raise BadArgument(
            "--truth", f"{a.truth} has no talents.npz: is it a market's -truth folder?"
        )
    f = _features(a.store)
    try:
        truth = load_truth(a.truth, f)
    except BadArgument as exc:  # the library's truth_dir is this command's --truth
        raise BadArgument("--truth", exc.reason) from None
    ev = evaluate(f, truth, k=a.top, merchants=a.merchants)
    if a.json:
        print(jsonio.dumps(ev.__dict__, indent=2))
        return EXIT_OK
    print(f"top-{ev.k} lists for {ev.merchants} merchants: share of the oracle-best GMV captured")
    for name, v in ev.capture.items():
        print(f"  {name:<20} {v:6.1%}")
    print(f"  engine / follower-count GMV: {ev.vs_followers:.2f}x")
    print(f"  oracle-best / follower-count GMV: {ev.oracle_vs_followers:.2f}x (the most reachable)")
    print(f"  hidden-need AUC (observed lean vs latent interest): {ev.hidden_need_auc:.3f}")
    return EXIT_OK


def _cmd_evaluate_real(a: argparse.Namespace) -> int:
    import tempfile

    from kolmatch.evaluation.real import evaluate_real, results_table

    if not a.data.is_dir():
        raise BadArgument("--data", f"{a.data} is not a folder")
    missing = [d for d in a.datasets if not (a.data / d).is_dir()]
    if missing:
        raise BadArgument(
            "--data", f"{a.data} has no {', '.join(missing)} folder (or name --datasets)"
        )
    if a.work is not None and a.work.exists() and not a.work.is_dir():
        raise BadArgument("--work", f"{a.work} is a file; name a folder")
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate_real(
            a.data, a.work or Path(tmp), datasets=a.datasets, seed=a.seed, split=a.split
        )
    if a.json:
        print(jsonio.dumps(results, indent=2))
    else:
        print(f"real data held out (split {a.split}, seed {a.seed}): NDCG@20 and recall@50")
        print(results_table(results))
    return EXIT_OK


def _cmd_import_real(a: argparse.Namespace) -> int:
    import shutil

    from kolmatch.evaluation.real import CONVERTERS

    if a.out.exists():
        raise BadArgument("out", f"{a.out} exists; name a new folder")
    if not a.src.is_dir():
        raise BadArgument("src", f"{a.src} is not a folder")
    try:
        task = CONVERTERS[a.dataset](a.src, a.out, split="all")
    except BaseException:  # it did not exist: whatever is there is half a conversion
        shutil.rmtree(a.out, ignore_errors=True)
        raise
    print(
        f"wrote {a.dataset} to {a.out}: {len(task.talent_ids):,} talents, "
        f"{task.follows.shape[0]:,} users, {task.follows.nnz:,} follows"
    )
    print(f"load it with: kolmatch load {a.out}")
    return EXIT_OK


def _cmd_demo(a: argparse.Namespace) -> int:
    from kolmatch.graph.sqlite_store import SQLiteStore
    from kolmatch.loaders.load import load_folder
    from kolmatch.loaders.synthetic import generate_market

    if not a.no_serve:
        _check_port("127.0.0.1", a.port)  # before the work and the keys, not after
    if a.dir.exists() and not a.dir.is_dir():
        raise BadArgument("--dir", f"{a.dir} is a file; name a folder")
    market = a.dir / f"market-{a.scale}-{a.seed}"
    db = a.dir / f"demo-{a.scale}-{a.seed}.db"
    a.dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    generate_market(a.scale, a.seed, market, progress=True)
    t1 = time.perf_counter()
    db.unlink(missing_ok=True)
    store = SQLiteStore(db)
    try:
        load_folder(market, store, progress=True)
        t2 = time.perf_counter()
        counts = store.counts()
    finally:
        store.close()
    nodes = sum(v for k, v in counts.items() if not k.isupper())
    rels = sum(v for k, v in counts.items() if k.isupper())
    print(f"kolmatch demo: the {a.scale} market (seed {a.seed})")
    print(f"  generated in {t1 - t0:.1f}s -> {market}")
    print(
        f"  loaded {nodes:,} nodes and {rels:,} relationships into sqlite:///{db} in {t2 - t1:.1f}s"
    )
    _print_counts(counts)
    from kolmatch.engine.cache import features_of
    from kolmatch.matching.score import match_merchant

    store = SQLiteStore(db)
    try:
        f = features_of(store)
    finally:
        store.close()
    merchant = str(f.merchant_ids[0])
    # the command as this one was run (.venv/bin/kolmatch under make): it can be copied
    prog = sys.argv[0] if Path(sys.argv[0]).name == "kolmatch" else "kolmatch"
    print(
        f"\ntop 3 talents for merchant {merchant} ({prog} match {merchant} --store sqlite:///{db}):"
    )
    for m in match_merchant(f, merchant, top=3):
        print(f"  {m.rank}. {m.talent}  score {m.score:+.3f}")
        for e in m.evidence[:3]:
            print(f"       - {e}")
    if a.no_serve:
        return EXIT_OK
    import secrets

    from kolmatch.api.auth import KeyRing, Principal

    internal, own = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    keys = KeyRing({internal: Principal("internal"), own: Principal("merchant", merchant)})
    print(f"\nserving the API on http://127.0.0.1:{a.port}/graphql (Ctrl-C stops)")
    print(f"  internal key: {internal}\n  key of merchant {merchant}: {own}")
    print(
        f"  curl -s http://127.0.0.1:{a.port}/graphql -H 'Authorization: Bearer {own}' "
        "-H 'Content-Type: application/json' -d '{\"query\": \"{ merchant(id: "
        f'\\"{merchant}\\") {{ name matches(first: 3) {{ edges {{ node {{ rank score '
        "talent { id name tier } } } } } }\"}'"
    )
    _serve(f"sqlite:///{db}", keys, "127.0.0.1", a.port)
    return EXIT_OK


def _serve(store_uri_text: str, keys: object, host: str, port: int, workers: int = 1) -> None:
    import os

    import uvicorn

    # An API answers within its request budget: a short driver retry turns an outage into a
    # prompt STORE_UNAVAILABLE rather than requests hanging on retries (unless the user chose).
    os.environ.setdefault("KOLMATCH_NEO4J_RETRY_SECONDS", str(API_NEO4J_RETRY_SECONDS))
    if workers > 1:  # each process builds its own app from the environment
        import tempfile

        os.environ["KOLMATCH_STORE"] = store_uri_text
        # one rate budget per key across the processes (kolmatch/api/limits.py), not one each
        rates = tempfile.TemporaryDirectory(prefix="kolmatch-rates-")
        os.environ.setdefault("KOLMATCH_RATE_FILE", os.path.join(rates.name, "buckets.db"))
        # and one job board: job(id:) and cancelJob answer in whichever process is asked
        os.environ.setdefault("KOLMATCH_JOBS_FILE", os.path.join(rates.name, "jobs.db"))
        uvicorn.run(
            "kolmatch.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
        return

    from kolmatch.api.app import create_app
    from kolmatch.api.auth import KeyRing
    from kolmatch.engine.service import EngineService
    from kolmatch.graph.open import open_store

    assert isinstance(keys, KeyRing)
    store = open_store(store_uri_text)
    try:
        service = EngineService(store)
    except BaseException:
        store.close()
        raise
    service.follow()  # a load or another server writing to the same store shows here too
    try:
        # uvicorn stops on SIGINT / SIGTERM after in-flight requests finish; a mutation that
        # outlived its request may still be writing: close() waits for it
        uvicorn.run(create_app(service, keys), host=host, port=port, log_level="info")
    except SystemExit as exc:  # uvicorn's own code 3 when it could not start (port taken since)
        if exc.code in (0, None):
            raise
        raise KolmatchError(
            f"the server on {host}:{port} did not start (see its log above)"
        ) from None
    finally:
        service.close()


def _check_port(host: str, port: int) -> None:
    """Refuse a host and port a server cannot listen on, before anything is started or shown.

    Raises
    ------
    BadArgument
        If ``host`` does not resolve.
    KolmatchError
        If the port is taken (another server) or not ours to bind.
    """
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise BadArgument("--host", f"cannot resolve {host!r}: {exc}") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as exc:
            busy = "; another server is there: stop it or choose another --port"
            raise KolmatchError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                f"{busy if exc.errno == errno.EADDRINUSE else ''}"
            ) from None


def _cmd_serve(a: argparse.Namespace) -> int:
    import os

    from kolmatch.api.auth import load_keys
    from kolmatch.graph.open import store_uri

    keys = load_keys(a.keys)
    if len(keys) == 0:
        print(
            "kolmatch: no API keys: pass --keys FILE (JSON {key: principal}) or set "
            "KOLMATCH_API_KEYS=key=internal,key2=merchant:m1",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    _open_graph(a.store).close()  # a missing or empty store fails here, in one line
    _check_port(a.host, a.port)
    if a.keys:
        os.environ["KOLMATCH_API_KEYS_FILE"] = str(a.keys)
    _serve(store_uri(a.store), keys, a.host, a.port, a.workers)
    return EXIT_OK


_COMMANDS = {
    "generate": _cmd_generate,
    "load": _cmd_load,
    "import-files": _cmd_import_files,
    "schema": _cmd_schema,
    "migrate": _cmd_migrate,
    "stats": _cmd_stats,
    "match": _cmd_match,
    "why": _cmd_why,
    "plan": _cmd_plan,
    "assign": _cmd_assign,
    "similar": _cmd_similar,
    "overlap": _cmd_overlap,
    "leads": _cmd_leads,
    "evaluate": _cmd_evaluate,
    "evaluate-real": _cmd_evaluate_real,
    "import-real": _cmd_import_real,
    "demo": _cmd_demo,
    "serve": _cmd_serve,
}


def _say(message: object) -> None:
    """The one line a failure ends in, on stderr."""
    print(f"kolmatch: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the kolmatch command line; return the exit code.

    0 ok, 2 bad input, 1 any other failure, 130 interrupted (see the module's docstring).
    Argument errors exit 2 through :mod:`argparse` (``SystemExit``).
    """
    try:
        args = _parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except InputError as exc:
        n = len(exc.problems) + exc.truncated
        if n == 1 and exc.problems:
            _say(f"{exc.problems[0]}; nothing was written")
        else:
            print(
                f"kolmatch: {n} problems in the input; nothing was written:\n{exc}",
                file=sys.stderr,
            )
        return EXIT_BAD_INPUT
    except (UnknownId, BadArgument, InfeasiblePlan, NotEligible, LimitExceeded) as exc:
        _say(exc)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head`: not a failure
        return EXIT_OK
    except StoreUnavailable as exc:
        _say(f"store unavailable: {exc}")
        return EXIT_FAILURE
    except KolmatchError as exc:
        _say(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # a path given or the disk: the message names the file
        _say(exc)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("KOLMATCH_DEBUG"):
            raise
        _say(
            f"internal error: {type(exc).__name__}: {exc} (a bug in kolmatch; "
            "KOLMATCH_DEBUG=1 shows the traceback)"
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
