/* kolmatch explorer: one page per role over POST /graphql (docs/explorer.md).
 *
 * Vanilla JS, charts drawn as SVG by hand, no request but to this server. The API key is
 * typed in, kept in sessionStorage (this tab only) and sent as `Authorization: Bearer`.
 * The page asks for what the key's principal should see; the server's policy decides what it
 * may see (a refusal is shown as one error line, never worked around here).
 */
(function () {
  "use strict";

  const KEY_STORE = "kolmatch.apiKey";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PAGE = 20;
  const MAX_HEATMAP = 40; // planned talents shown in the overlap heat map
  const MAX_ALIASES = 20; // the API's alias limit per query
  const PALETTE = [
    "#4a7fb5", "#e07b39", "#3f9e5c", "#c0392b", "#8e6bbf",
    "#8c6d4f", "#d36fa8", "#6b7b8c", "#b5a32c", "#2aa6b8",
  ];
  const OTHER_COLOUR = "#b8c0cc";

  const state = { me: null, generation: 0, matchesAfter: null, talentsAfter: null };

  // ---------- small DOM helpers ----------

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  // ---------- formatting ----------

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

  function yuan(x) {
    return x === null || x === undefined ? "–" : "¥" + integer.format(x);
  }
  function count(x) {
    return x === null || x === undefined ? "–" : integer.format(x);
  }
  function short(x) {
    return x === null || x === undefined ? "–" : compact.format(x);
  }
  function ratio(x) {
    return x === null || x === undefined ? "–" : x.toFixed(2) + "×";
  }
  function pct(x) {
    return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%";
  }
  function byNaturalName(a, b) {
    return a.name.localeCompare(b.name, "en", { numeric: true }) || a.id.localeCompare(b.id);
  }

  // ---------- errors and status: one line each ----------

  class ApiError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  function errorLine(errors) {
    const e = errors[0];
    const code = (e.extensions && e.extensions.code) || e.code || "ERROR";
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    return `${code}: ${e.message}${more}`;
  }

  function showError(errorsOrException) {
    const box = $("error");
    let line;
    if (Array.isArray(errorsOrException)) line = errorLine(errorsOrException);
    else if (errorsOrException instanceof ApiError)
      line = `${errorsOrException.code}: ${errorsOrException.message}`;
    else line = `ERROR: ${errorsOrException && errorsOrException.message ? errorsOrException.message : errorsOrException}`;
    line = line.replace(/\s+/g, " ");
    box.textContent = line;
    box.title = line;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function status(text) {
    $("status").textContent = text || "";
  }

  // ---------- the API ----------

  function apiKey() {
    return sessionStorage.getItem(KEY_STORE);
  }

  /** POST one GraphQL operation; returns {data, errors}. Throws ApiError when nothing ran. */
  async function gql(query, variables) {
    const key = apiKey();
    if (!key) throw new ApiError("UNAUTHENTICATED", "sign in with an API key");
    let response;
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + key },
        body: JSON.stringify({ query, variables: variables || {} }),
      });
    } catch (e) {
      throw new ApiError("NETWORK", "the server did not answer");
    }
    let body;
    try {
      body = await response.json();
    } catch (e) {
      throw new ApiError("HTTP_" + response.status, "the server's answer was not JSON");
    }
    if (!body || (body.data === undefined && body.errors)) {
      const e = (body && body.errors && body.errors[0]) || {};
      throw new ApiError((e.extensions && e.extensions.code) || "HTTP_" + response.status, e.message || "no data");
    }
    return { data: body.data || {}, errors: body.errors || [] };
  }

  /** The data of an operation that must succeed whole; throws on its first error. */
  async function ask(query, variables) {
    const { data, errors } = await gql(query, variables);
    if (errors.length) throw new ApiError(errors[0].extensions && errors[0].extensions.code, errorLine(errors).replace(/^[A-Z_]+: /, ""));
    return data;
  }

  // ---------- routing ----------

  function route() {
    const out = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      const [k, v] = part.split("=");
      if ((k === "merchant" || k === "agency") && v) out[k] = decodeURIComponent(v);
    }
    return out;
  }

  function hideViews() {
    for (const id of ["merchant-view", "agency-view", "internal-view"]) $(id).hidden = true;
  }

  async function render() {
    const generation = ++state.generation;
    const current = () => generation === state.generation;
    clearError();
    hideViews();
    const signedIn = Boolean(apiKey());
    $("signout").hidden = !signedIn;
    $("intro").hidden = signedIn;
    if (!signedIn) {
      $("who").textContent = "";
      status("");
      return;
    }
    try {
      if (!state.me) {
        status("signing in…");
        state.me = (await ask("{ me { kind id } }")).me;
      }
      if (!current()) return;
      const me = state.me;
      $("who").textContent = `Signed in as ${me.kind}${me.id ? " " + me.id : ""}`;
      const wanted = route();
      const jobs = [];
      if (me.kind === "internal") jobs.push(internalView(current));
      if (wanted.merchant || (me.kind === "merchant" && !wanted.agency))
        jobs.push(merchantView(wanted.merchant || me.id, current));
      if (wanted.agency || (me.kind === "agency" && !wanted.merchant))
        jobs.push(agencyView(wanted.agency || me.id, current));
      await Promise.all(jobs);
      if (current()) status("");
    } catch (e) {
      if (!current()) return;
      if (e instanceof ApiError && e.code === "UNAUTHENTICATED") {
        sessionStorage.removeItem(KEY_STORE);
        state.me = null;
        $("signout").hidden = true;
        $("intro").hidden = false;
        $("who").textContent = "";
      }
      status("");
      showError(e);
    }
  }

  // ---------- merchant: match list with evidence, plans ----------

  const MATCHES = `query Matches($id: ID!, $first: Int!, $after: String) {
    merchant(id: $id) {
      id name categories
      matches(first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node {
          rank score price priceEstimated affordable evidence
          breakdown { signal value }
          talent { id name tier followers listPrice }
        } }
      }
    }
  }`;

  const PLAN = `query Plan($id: ID!, $budget: Float!, $tiers: String) {
    merchant(id: $id) {
      plan(budget: $budget, tiers: $tiers) {
        window budget cost expectedGmv uniqueReach targetUsers roi commission unspent
        objectiveKind objectiveNote feeNote unspentNote overlapPairs
        talents {
          talent { id name } tier fee feeEstimated expectedGmv marginalReach roi
        }
        overlaps { a b shared shareOfSmaller jaccard }
      }
    }
  }`;

  async function merchantView(id, current) {
    state.merchant = id;
    state.matchesAfter = null;
    clear($("matches").tBodies[0]);
    $("plan").hidden = true;
    $("merchant-title").textContent = id;
    $("merchant-categories").textContent = "";
    $("matches-count").textContent = "";
    $("merchant-view").hidden = false;
    await loadMatches(id, current);
  }

  async function loadMatches(id, current) {
    status("loading the match list…");
    const { data, errors } = await gql(MATCHES, { id, first: PAGE, after: state.matchesAfter });
    if (!current()) return;
    const m = data.merchant;
    if (m) {
      $("merchant-title").textContent = `${m.name} (${m.id})`;
      $("merchant-categories").textContent = m.categories.length
        ? "Sells in " + m.categories.join(", ")
        : "";
    }
    if (errors.length) showError(errors);
    const conn = m && m.matches;
    if (!conn) {
      $("matches-more").hidden = true;
      return;
    }
    const body = $("matches").tBodies[0];
    for (const edge of conn.edges) body.append(matchRow(edge.node));
    state.matchesAfter = conn.pageInfo.endCursor;
    $("matches-more").hidden = !conn.pageInfo.hasNextPage;
    $("matches-count").textContent = `${count(body.rows.length)} of ${count(conn.totalCount)} eligible talents`;
  }

  function matchRow(x) {
    const signal = Object.fromEntries(x.breakdown.map((b) => [b.signal, b.value]));
    const evidence = el("details", {}, el("summary", { text: `${x.evidence.length} reasons` }),
      el("ul", {}, ...x.evidence.map((line) => el("li", { text: line }))));
    const price = yuan(x.price) + (x.priceEstimated ? " (est.)" : "");
    return el("tr", { class: "match", "data-talent": x.talent.id },
      el("td", { class: "num", text: x.rank }),
      el("td", {}, el("span", { class: "name", text: x.talent.name }), el("span", { class: "id", text: x.talent.id })),
      el("td", { text: x.talent.tier }),
      el("td", { class: "num", text: price, title: x.affordable === false ? "above the budget" : null }),
      el("td", { class: "num", text: yuan(signal.expected_gmv) }),
      el("td", { class: "num", text: ratio(signal.roi) }),
      el("td", { class: "num", text: x.score.toFixed(3) }),
      el("td", {}, evidence));
  }

  async function runPlan(event) {
    event.preventDefault();
    clearError();
    const budget = Number($("budget").value);
    const tiers = $("tiers").value.trim() || null;
    const id = state.merchant;
    const generation = state.generation;
    const current = () => generation === state.generation && id === state.merchant;
    $("plan-button").disabled = true;
    status(`planning for ${yuan(budget)}…`);
    try {
      const { data, errors } = await gql(PLAN, { id, budget, tiers });
      if (!current()) return;
      if (errors.length) showError(errors);
      const plan = data.merchant && data.merchant.plan;
      if (!plan) {
        $("plan").hidden = true;
        return;
      }
      const pairs = await overlapPairs(plan);
      if (!current()) return;
      drawPlan(plan, pairs);
    } catch (e) {
      showError(e);
    } finally {
      $("plan-button").disabled = false;
      status("");
    }
  }

  /** Overlaps of the planned talents: the plan's own pairs, or (when it lists only the most
   * overlapping ones) every pair, asked of Talent.overlapWith. */
  async function overlapPairs(plan) {
    const ids = plan.talents.slice(0, MAX_HEATMAP).map((t) => t.talent.id);
    const pairs = new Map();
    const put = (a, b, o) => {
      pairs.set(a + " " + b, o);
      pairs.set(b + " " + a, o);
    };
    for (const o of plan.overlaps) put(o.a, o.b, o);
    if (plan.overlapPairs <= plan.overlaps.length || ids.length < 2) return pairs;
    for (let start = 0; start < ids.length; start += MAX_ALIASES) {
      const chunk = ids.slice(start, start + MAX_ALIASES);
      const params = chunk.map((_, i) => `$t${i}: ID!`).join(", ");
      const fields = chunk
        .map((_, i) => `t${i}: talent(id: $t${i}) { id overlapWith(ids: $ids) { other shared shareOfSmaller jaccard } }`)
        .join(" ");
      const variables = { ids };
      chunk.forEach((t, i) => (variables["t" + i] = t));
      const data = await ask(`query Overlaps($ids: [ID!]!, ${params}) { ${fields} }`, variables);
      for (const t of Object.values(data)) {
        for (const o of t.overlapWith || []) {
          if (o && o.other !== t.id) put(t.id, o.other, { a: t.id, b: o.other, ...o });
        }
      }
    }
    return pairs;
  }

  function drawPlan(plan, pairs) {
    const summary = clear($("plan-summary"));
    const item = (label, value) => summary.append(el("div", {}, el("dt", { text: label }), el("dd", { text: value })));
    item("Window", plan.window);
    item("Budget", yuan(plan.budget));
    item("Cost", yuan(plan.cost));
    item("Talents", count(plan.talents.length));
    item("Expected GMV", yuan(plan.expectedGmv));
    item("ROI", ratio(plan.roi));
    item("Unique reach", `${count(plan.uniqueReach)} of ${count(plan.targetUsers)} target users`);
    $("plan-notes").textContent = [plan.objectiveNote, plan.feeNote, plan.unspentNote].filter(Boolean).join(" · ");
    const body = clear($("plan-talents").tBodies[0]);
    plan.talents.forEach((t, i) => body.append(el("tr", { class: "planned", "data-talent": t.talent.id },
      el("td", { class: "num", text: i + 1 }),
      el("td", {}, el("span", { class: "name", text: t.talent.name }), el("span", { class: "id", text: t.talent.id })),
      el("td", { text: t.tier }),
      el("td", { class: "num", text: yuan(t.fee) + (t.feeEstimated ? " (est.)" : "") }),
      el("td", { class: "num", text: yuan(t.expectedGmv) }),
      el("td", { class: "num", text: ratio(t.roi) }),
      el("td", { class: "num", text: count(t.marginalReach) }))));
    $("plan").hidden = false;
    drawReachChart($("reach-chart"), plan);
    drawHeatMap($("overlap-map"), plan.talents.slice(0, MAX_HEATMAP).map((t) => t.talent), pairs);
  }

  function niceTicks(max, n) {
    if (max <= 0) return [0];
    const raw = max / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const ticks = [];
    for (let v = 0; v <= max + step * 0.001; v += step) ticks.push(v);
    if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }

  /** Bars: new target users per pick, in the plan's greedy order; line: cumulative reach. */
  function drawReachChart(root, plan) {
    clear(root);
    const talents = plan.talents;
    const W = 560, H = 280, L = 56, R = 16, T = 14, B = 44;
    root.setAttribute("viewBox", `0 0 ${W} ${H}`);
    root.setAttribute("width", W);
    root.setAttribute("height", H);
    if (!talents.length) {
      root.append(svg("text", { x: L, y: H / 2 }, "no talent fits this budget"));
      return;
    }
    let total = 0;
    const cumulative = talents.map((t) => (total += t.marginalReach));
    const ticks = niceTicks(Math.max(total, 1), 4);
    const top = ticks[ticks.length - 1];
    const x0 = L, x1 = W - R, y0 = H - B, y1 = T;
    const band = (x1 - x0) / talents.length;
    const y = (v) => y0 - ((y0 - y1) * v) / top;
    for (const v of ticks) {
      root.append(svg("line", { class: "grid-line", x1: x0, x2: x1, y1: y(v), y2: y(v) }));
      root.append(svg("text", { x: x0 - 6, y: y(v) + 4, "text-anchor": "end" }, short(v)));
    }
    talents.forEach((t, i) => {
      const h = y0 - y(t.marginalReach);
      root.append(svg("rect", {
        class: "bar", "data-talent": t.talent.id,
        x: x0 + i * band + band * 0.15, y: y0 - h, width: Math.max(band * 0.7, 1), height: h,
      }, svg("title", {}, `pick ${i + 1}: ${t.talent.name} adds ${count(t.marginalReach)} target users (${count(cumulative[i])} in all)`)));
    });
    const points = cumulative.map((v, i) => `${x0 + (i + 0.5) * band},${y(v)}`).join(" ");
    root.append(svg("polyline", { class: "curve", points }));
    cumulative.forEach((v, i) => root.append(svg("circle", { class: "dot", cx: x0 + (i + 0.5) * band, cy: y(v), r: 3 },
      svg("title", {}, `${count(v)} unique target users after ${i + 1} picks`))));
    root.append(svg("line", { class: "axis", x1: x0, x2: x1, y1: y0, y2: y0 }));
    root.append(svg("line", { class: "axis", x1: x0, x2: x0, y1: y0, y2: y1 }));
    const every = Math.ceil(talents.length / 20);
    talents.forEach((t, i) => {
      if (i % every === 0) root.append(svg("text", { x: x0 + (i + 0.5) * band, y: y0 + 14, "text-anchor": "middle" }, i + 1));
    });
    root.append(svg("text", { x: (x0 + x1) / 2, y: H - 6, "text-anchor": "middle" }, "pick (greedy order by new reach)"));
    root.append(svg("text", { x: 12, y: (y0 + y1) / 2, transform: `rotate(-90 12 ${(y0 + y1) / 2})`, "text-anchor": "middle" }, "target users"));
  }

  function shade(value, max) {
    // white to the accent red, by share of the largest overlap shown
    const t = max > 0 ? Math.min(value / max, 1) : 0;
    const mix = (a, b) => Math.round(a + (b - a) * t);
    return `rgb(${mix(255, 192)},${mix(255, 57)},${mix(255, 43)})`;
  }

  /** A talents x talents grid, each cell the share of the smaller audience both reach. */
  function drawHeatMap(root, talents, pairs) {
    clear(root);
    const n = talents.length;
    const cell = Math.max(10, Math.min(30, Math.floor(360 / Math.max(n, 1))));
    const label = 120, topLabel = 90;
    const W = label + n * cell + 20, H = topLabel + n * cell + 40;
    root.setAttribute("viewBox", `0 0 ${W} ${H}`);
    root.setAttribute("width", W);
    root.setAttribute("height", H);
    if (n < 2) {
      root.append(svg("text", { x: 10, y: 20 }, "one talent: no overlap to show"));
      return;
    }
    let max = 0;
    for (const o of pairs.values()) max = Math.max(max, o.shareOfSmaller);
    const trim = (s) => (s.length > 16 ? s.slice(0, 15) + "…" : s);
    talents.forEach((t, i) => {
      root.append(svg("text", { x: label - 6, y: topLabel + i * cell + cell / 2 + 4, "text-anchor": "end" }, svg("title", {}, t.name), trim(t.name)));
      const cx = label + i * cell + cell / 2;
      root.append(svg("text", { x: cx, y: topLabel - 6, transform: `rotate(-50 ${cx} ${topLabel - 6})` }, svg("title", {}, t.name), trim(t.name)));
    });
    talents.forEach((a, i) => {
      talents.forEach((b, j) => {
        const x = label + j * cell, y = topLabel + i * cell;
        if (i === j) {
          root.append(svg("rect", { class: "cell-empty", x, y, width: cell - 1, height: cell - 1 }));
          return;
        }
        const o = pairs.get(a.id + " " + b.id);
        const v = o ? o.shareOfSmaller : 0;
        const what = o ? `${pct(v)} of the smaller audience (${count(o.shared)} shared)` : "no shared audience";
        root.append(svg("rect", { class: "cell", "data-a": a.id, "data-b": b.id, x, y, width: cell - 1, height: cell - 1, fill: shade(v, max) },
          svg("title", {}, `${a.name} × ${b.name}: ${what}`)));
      });
    });
    const ly = topLabel + n * cell + 14;
    for (let k = 0; k <= 10; k++) {
      root.append(svg("rect", { x: label + k * 12, y: ly, width: 12, height: 10, fill: shade(k / 10, 1) }));
    }
    root.append(svg("text", { x: label - 6, y: ly + 9, "text-anchor": "end" }, "0%"));
    root.append(svg("text", { x: label + 11 * 12 + 4, y: ly + 9 }, pct(max)));
  }

  // ---------- agency: roster network, pitch lists, category gaps ----------

  const AGENCY = `query Agency($id: ID!) {
    agency(id: $id) {
      id name rosterReach
      rosterEdges(perTalent: 2) { a b shared shareOfSmaller jaccard }
      communities
      categoryGaps(first: 5) { category demandShare rosterShare }
    }
  }`;

  const ROSTER = `query Roster($id: ID!, $after: String) {
    agency(id: $id) {
      roster(first: 100, after: $after) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { id name tier followers } }
      }
    }
  }`;

  const PITCH = `query Pitch($id: ID!) {
    talent(id: $id) {
      id name tier listPrice
      recommendedMerchants(first: 10) { merchant merchantName rank expectedGmv bestProduct roi roiBasis }
    }
  }`;

  async function agencyView(id, current) {
    $("agency-view").hidden = false;
    $("agency-title").textContent = id;
    $("agency-summary").textContent = "";
    clear($("network"));
    clear($("communities"));
    clear($("pitch").tBodies[0]);
    clear($("gaps").tBodies[0]);
    clear($("pitch-talent"));
    status("loading the roster…");
    const { data, errors } = await gql(AGENCY, { id });
    if (!current()) return;
    if (errors.length) showError(errors);
    const agency = data.agency;
    if (!agency) return;
    $("agency-title").textContent = `${agency.name} (${agency.id})`;
    const roster = [];
    let after = null;
    for (let page = 0; page < 50; page++) {
      const r = (await ask(ROSTER, { id, after })).agency.roster;
      if (!current()) return;
      roster.push(...r.edges.map((e) => e.node));
      if (!r.pageInfo.hasNextPage) break;
      after = r.pageInfo.endCursor;
    }
    const parts = [`${count(roster.length)} talents`];
    if (agency.rosterReach !== null && agency.rosterReach !== undefined)
      parts.push(`${count(agency.rosterReach)} distinct audience members`);
    if (agency.communities) parts.push(`${agency.communities.length} communities`);
    $("agency-summary").textContent = parts.join(" · ");
    const byId = new Map(roster.map((t) => [t.id, t]));
    const communities = agency.communities || [roster.map((t) => t.id)];
    const edges = agency.rosterEdges || [];
    drawNetwork($("network"), communities, edges, byId);
    drawLegend($("communities"), communities);
    drawGaps(agency.categoryGaps || []);
    const select = $("pitch-talent");
    for (const t of roster.slice().sort(byNaturalName)) select.append(el("option", { value: t.id, text: `${t.name} (${t.id})` }));
    const first = edges.length ? edges[0].a : roster.length ? roster[0].id : null;
    if (first && agency.rosterEdges) await selectTalent(first);
  }

  /** Communities on a ring, each a sunflower of its talents (the most connected inside). */
  function drawNetwork(root, communities, edges, byId) {
    clear(root);
    const spacing = 12;
    const degree = new Map();
    for (const e of edges) {
      degree.set(e.a, (degree.get(e.a) || 0) + e.jaccard);
      degree.set(e.b, (degree.get(e.b) || 0) + e.jaccard);
    }
    const groups = communities.map((c) => c.slice().sort((a, b) =>
      (degree.get(b) || 0) - (degree.get(a) || 0) ||
      ((byId.get(b) || {}).followers || 0) - ((byId.get(a) || {}).followers || 0) || a.localeCompare(b)));
    const radius = groups.map((g) => spacing * 0.62 * Math.sqrt(g.length) + spacing);
    const gap = spacing * 2;
    const circumference = radius.reduce((s, r) => s + 2 * r + gap, 0);
    const ring = groups.length > 1 ? Math.max(circumference / (2 * Math.PI), Math.max(...radius) * 1.2) : 0;
    const extent = ring + Math.max(...radius, spacing) + 10;
    root.setAttribute("viewBox", `${-extent} ${-extent} ${2 * extent} ${2 * extent}`);
    root.setAttribute("width", 580);
    root.setAttribute("height", 580);
    const where = new Map();
    let angle = -Math.PI / 2;
    groups.forEach((g, k) => {
      const share = (2 * radius[k] + gap) / circumference;
      const centre = angle + Math.PI * share;
      angle += 2 * Math.PI * share;
      const cx = ring * Math.cos(centre), cy = ring * Math.sin(centre);
      g.forEach((id, i) => {
        const r = spacing * 0.62 * Math.sqrt(i + 0.5), a = i * 2.399963;
        where.set(id, { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a), k });
      });
    });
    const maxJ = Math.max(...edges.map((e) => e.jaccard), 1e-9);
    const lines = svg("g", { class: "edges" });
    for (const e of edges) {
      const p = where.get(e.a), q = where.get(e.b);
      if (!p || !q) continue;
      lines.append(svg("line", { class: "edge", x1: p.x, y1: p.y, x2: q.x, y2: q.y, "stroke-width": (0.4 + 3 * e.jaccard / maxJ).toFixed(2) },
        svg("title", {}, `${name(byId, e.a)} – ${name(byId, e.b)}: ${count(e.shared)} shared audience members (${pct(e.shareOfSmaller)} of the smaller)`)));
    }
    root.append(lines);
    const nodes = svg("g", { class: "nodes" });
    for (const [id, p] of where) {
      const t = byId.get(id) || { id, name: id, followers: null, tier: "" };
      const size = t.followers ? Math.min(7, Math.max(3, 1.2 * Math.log10(t.followers) - 2.5)) : 3;
      const colour = p.k < PALETTE.length ? PALETTE[p.k] : OTHER_COLOUR;
      const node = svg("circle", { class: "node", "data-talent": id, cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: size.toFixed(1), fill: colour },
        svg("title", {}, `${t.name} (${id}) · ${t.tier} · ${short(t.followers)} followers · community ${p.k + 1}`));
      node.addEventListener("click", () => selectTalent(id));
      nodes.append(node);
    }
    root.append(nodes);
  }

  function name(byId, id) {
    return (byId.get(id) || { name: id }).name;
  }

  function drawLegend(root, communities) {
    clear(root);
    communities.forEach((c, k) => {
      if (k > PALETTE.length) return;
      const colour = k < PALETTE.length ? PALETTE[k] : OTHER_COLOUR;
      const rest = communities.slice(k).reduce((s, g) => s + g.length, 0);
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = colour;
      const label = k < PALETTE.length ? `community ${k + 1}: ${c.length} talents` : `others: ${rest} talents`;
      root.append(el("li", {}, swatch, label));
    });
  }

  function drawGaps(gaps) {
    const body = clear($("gaps").tBodies[0]);
    for (const g of gaps) {
      const bar = el("span", { class: "gapbar" });
      bar.style.width = Math.max(0, Math.round(400 * (g.demandShare - g.rosterShare))) + "px";
      body.append(el("tr", { class: "gap" },
        el("td", { text: g.category }),
        el("td", { class: "num", text: pct(g.demandShare) }),
        el("td", { class: "num", text: pct(g.rosterShare) }),
        el("td", {}, bar, " ", pct(g.demandShare - g.rosterShare))));
    }
  }

  async function selectTalent(id) {
    const generation = state.generation;
    for (const n of document.querySelectorAll("#network .node.selected")) n.classList.remove("selected");
    for (const n of document.querySelectorAll(`#network .node[data-talent="${CSS.escape(id)}"]`)) n.classList.add("selected");
    $("pitch-talent").value = id;
    const body = clear($("pitch").tBodies[0]);
    $("pitch-title").textContent = "loading…";
    try {
      const { data, errors } = await gql(PITCH, { id });
      if (generation !== state.generation || $("pitch-talent").value !== id) return;
      if (errors.length) showError(errors);
      const t = data.talent;
      if (!t) return;
      $("pitch-title").textContent = `${t.name} (${t.id}) · ${t.tier} · list price ${yuan(t.listPrice)}`;
      for (const lead of t.recommendedMerchants || []) {
        body.append(el("tr", { class: "lead", "data-merchant": lead.merchant },
          el("td", { class: "num", text: lead.rank }),
          el("td", {}, el("span", { class: "name", text: lead.merchantName }), el("span", { class: "id", text: lead.merchant })),
          el("td", { class: "num", text: yuan(lead.expectedGmv) }),
          el("td", { class: "num", text: ratio(lead.roi), title: lead.roiBasis ? "on the " + lead.roiBasis : null }),
          el("td", { text: lead.bestProduct })));
      }
    } catch (e) {
      showError(e);
    }
  }

  // ---------- internal: talent search, match-list export ----------

  const SEARCH = `query Search($filter: TalentFilter, $first: Int!, $after: String, $order: TalentOrder!) {
    talents(filter: $filter, first: $first, after: $after, orderBy: $order) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { node { id name tier followers listPrice region risk excluded agency { id name } } }
    }
  }`;

  async function internalView(current) {
    $("internal-view").hidden = false;
    state.talentsAfter = null;
    clear($("talents").tBodies[0]);
    await loadTalents(current);
  }

  function searchFilter() {
    const f = {};
    const text = (id) => $(id).value.trim();
    if (text("s-name")) f.nameContains = text("s-name");
    if (text("s-tier")) f.tier = text("s-tier");
    if (text("s-category")) f.category = text("s-category");
    if (text("s-agency")) f.agency = text("s-agency");
    if (text("s-min")) f.minFollowers = Number(text("s-min"));
    return f;
  }

  async function loadTalents(current) {
    status("searching talents…");
    const { data, errors } = await gql(SEARCH, {
      filter: searchFilter(), first: PAGE, after: state.talentsAfter, order: $("s-order").value,
    });
    if (!current()) return;
    if (errors.length) showError(errors);
    const conn = data.talents;
    if (!conn) return;
    const body = $("talents").tBodies[0];
    for (const { node: t } of conn.edges) {
      const agency = t.agency
        ? el("a", { href: "#agency=" + encodeURIComponent(t.agency.id), text: t.agency.name })
        : "independent";
      body.append(el("tr", { class: "talent", "data-talent": t.id },
        el("td", {}, el("span", { class: "name", text: t.name }), el("span", { class: "id", text: t.id })),
        el("td", { text: t.tier }),
        el("td", { class: "num", text: short(t.followers) }),
        el("td", { class: "num", text: yuan(t.listPrice) }),
        el("td", {}, agency),
        el("td", { text: t.region || "–" }),
        el("td", { class: "num", text: t.excluded ? "excluded" : t.risk.toFixed(2) })));
    }
    state.talentsAfter = conn.pageInfo.endCursor;
    $("talents-more").hidden = !conn.pageInfo.hasNextPage;
    $("talents-count").textContent = `${count(body.rows.length)} of ${count(conn.totalCount)} talents`;
  }

  /** GET /export/matches, read as it streams; offers the result as a download. */
  async function runExport(format) {
    clearError();
    const merchants = $("e-merchants").value.split(/[\s,]+/).filter(Boolean);
    const params = new URLSearchParams({ format, first: $("e-first").value.trim() || "10" });
    for (const m of merchants) params.append("merchant", m);
    const out = $("export-status");
    clear($("export-link"));
    $("export-preview").hidden = true;
    out.textContent = "exporting…";
    for (const b of document.querySelectorAll("#export-form button")) b.disabled = true;
    try {
      const response = await fetch("/export/matches?" + params, {
        headers: { Authorization: "Bearer " + apiKey() },
      });
      if (!response.ok) {
        let body = null;
        try { body = await response.json(); } catch (e) { /* not JSON */ }
        if (body && body.errors) showError(body.errors);
        else showError(new ApiError("HTTP_" + response.status, "the export failed"));
        out.textContent = "";
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parts = [];
      let lines = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        parts.push(text);
        lines += (text.match(/\n/g) || []).length;
        out.textContent = `received ${count(lines)} lines…`;
      }
      parts.push(decoder.decode());
      const text = parts.join("");
      const rows = format === "csv" ? Math.max(lines - 1, 0) : lines;
      const failed = format === "jsonl"
        ? text.split("\n").filter((l) => l.startsWith('{"merchant"') && l.includes('"error"')).length
        : 0;
      out.textContent = `${count(rows)} rows for ${count(merchants.length)} merchants` + (failed ? ` (${failed} without a list)` : "");
      const type = format === "csv" ? "text/csv" : "application/x-ndjson";
      const url = URL.createObjectURL(new Blob([text], { type }));
      const file = `matches.${format}`;
      $("export-link").append(el("a", { class: "download", id: "export-download", href: url, download: file, text: `Save ${file}` }));
      const preview = $("export-preview");
      preview.textContent = text.split("\n").slice(0, 6).map((l) => (l.length > 240 ? l.slice(0, 239) + "…" : l)).join("\n");
      preview.hidden = false;
    } catch (e) {
      out.textContent = "";
      showError(e);
    } finally {
      for (const b of document.querySelectorAll("#export-form button")) b.disabled = false;
    }
  }

  // ---------- wiring ----------

  function start() {
    $("signin").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORE, key);
      $("key").value = "";
      state.me = null;
      render();
    });
    $("signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      state.me = null;
      render();
    });
    window.addEventListener("hashchange", render);
    $("matches-more").addEventListener("click", () => {
      const generation = state.generation;
      loadMatches(state.merchant, () => generation === state.generation).catch(showError);
    });
    $("plan-form").addEventListener("submit", runPlan);
    $("pitch-talent").addEventListener("change", (event) => selectTalent(event.target.value));
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      clearError();
      state.talentsAfter = null;
      clear($("talents").tBodies[0]);
      const generation = state.generation;
      loadTalents(() => generation === state.generation).catch(showError).finally(() => status(""));
    });
    $("talents-more").addEventListener("click", () => {
      const generation = state.generation;
      loadTalents(() => generation === state.generation).catch(showError).finally(() => status(""));
    });
    $("open-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("o-merchant").value.trim();
      if (id) location.hash = "merchant=" + encodeURIComponent(id);
    });
    for (const b of document.querySelectorAll("#export-form button")) {
      b.addEventListener("click", () => runExport(b.dataset.format));
    }
    render();
  }

  start();
})();
