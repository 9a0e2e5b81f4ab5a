// The live dashboard: REST for the initial state and the book, the websocket for everything live.
// No libraries: a small canvas chart per symbol. The token comes from ?token= (then kept in
// sessionStorage and removed from the address bar) or the login form.
"use strict";

const STREAM_TOPICS = ["market.bars", "market.ticks", "consensus.decisions", "risk.verdicts", "fills", "agent.signals",
  "news.items"];
const MAX_POINTS = 750;        // bars kept per symbol
const MAX_CHARTS = 12;
const MAX_DECISION_ROWS = 60;
const MAX_FILL_ROWS = 30;
const BOOK_POLL_MS = 3000;
const AGENTS_POLL_MS = 5000;
const NEWS_POLL_MS = 5000;     // news markers of the charted symbols and the analyst panel
const MAX_NEWS_PER_CHART = 300;
const MAX_ANALYST_VOTES = 12;
const MEMORY_POLL_MS = 3000;
const MAX_MEMORY_ROUNDS = 8;

const state = {
  token: null,
  ws: null,
  lastId: null,
  retryMs: 500,
  events: 0,
  rateWindow: [],
  series: new Map(),      // symbol -> {bars: [{t, close}], tick: {t, price} | null, decisions: [], fills: [], dirty}
  decisions: new Map(),   // decision_id -> row element
  verdicts: new Map(),    // decision_id -> verdict record (arrived before its decision)
  agentsLive: new Map(),  // agent -> {ts, action, symbol}
  fills: new Set(),       // fill ids shown
  seenDecisions: new Set(),
  only: null,             // Set of symbols from ?symbols=, or null for all
  hidden: new Set(),      // symbols with prices but no chart (over MAX_CHARTS)
  account: null,
  bookTimer: null,
  analystTimer: null,
  stopped: false,
};

// ---- helpers --------------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("data-")) el.setAttribute(k, v);
    else el[k] = v;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

function money(x) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function signed(x) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  return (x > 0 ? "+" : "") + money(x);
}

function fixed(x, digits) {
  return x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(digits);
}

function pct(x) {
  return x === null || x === undefined || !isFinite(x) ? "–" : (100 * x).toFixed(0) + "%";
}

function price(x) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  return x >= 1000 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(3);
}

function day(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toISOString().slice(0, 10);
}

function stamp(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  if (isNaN(d)) return String(ts);
  const iso = d.toISOString();
  return iso.slice(11, 19) === "00:00:00" ? iso.slice(0, 10) : iso.slice(0, 10) + " " + iso.slice(11, 16);
}

function signClass(x) {
  return x > 0 ? "up" : x < 0 ? "down" : "";
}

function clearEmpty(tbody) {
  const empty = tbody.querySelector(".empty-row");
  if (empty) empty.remove();
}

// ---- token and REST --------------------------------------------------------------------------------------

function initToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem("algo.token", fromUrl);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + (url.search || "") + url.hash);
  }
  state.token = fromUrl || sessionStorage.getItem("algo.token");
  const only = url.searchParams.get("symbols");
  if (only) state.only = new Set(only.split(",").map((x) => x.trim()).filter(Boolean));
}

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setStatus("no token", "pill-bad");
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (response.status === 401) {
    state.stopped = true;
    showLogin("The bridge refused this token.");
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

// ---- status ----------------------------------------------------------------------------------------------

function setStatus(text, cls) {
  const el = $("status");
  el.textContent = text;
  el.className = "pill " + cls;
  el.dataset.state = text;
}

function countEvent() {
  state.events += 1;
  state.rateWindow.push(performance.now());
}

setInterval(() => {
  const now = performance.now();
  while (state.rateWindow.length && now - state.rateWindow[0] > 5000) state.rateWindow.shift();
  $("event-count").textContent = state.events.toLocaleString("en-US");
  $("event-rate").textContent = (state.rateWindow.length / 5).toFixed(1);
  $("last-id").textContent = state.lastId === null ? "–" : String(state.lastId).slice(-6);
}, 1000);

// ---- series and charts -----------------------------------------------------------------------------------

function seriesFor(symbol) {
  let s = state.series.get(symbol);
  if (!s) {
    s = { bars: [], tick: null, decisions: [], fills: [], news: new Map(), dirty: true, card: null, canvas: null,
          newsLayer: null, newsTip: null, newsEls: new Map(), pinned: null };  // pinned: the news id a click keeps shown
    state.series.set(symbol, s);
  }
  return s;
}

// A chart card appears with a symbol's first price (decisions or fills alone make none); at most
// MAX_CHARTS of them, or the symbols named in ?symbols=AAPL,MSFT.
function cardFor(symbol, s) {
  if (s.card) return s.card;
  if (state.only && !state.only.has(symbol)) return null;
  const charts = $("charts");
  if (charts.querySelectorAll(".chart-card").length >= MAX_CHARTS) {
    state.hidden.add(symbol);
    $("charts-more").textContent = state.hidden.size + " more symbol(s) not charted; choose with ?symbols=";
    return null;
  }
  const empty = $("charts-empty");
  if (empty) empty.remove();
  s.canvas = h("canvas", { width: 340, height: 170 });
  s.newsLayer = h("div", { class: "news-layer" });
  s.newsTip = h("div", { class: "news-tip", hidden: true });
  s.card = h("div", { class: "chart-card", "data-symbol": symbol },
    h("div", { class: "chart-head" },
      h("span", { class: "symbol" }, symbol),
      h("span", {}, h("span", { class: "last-price" }, "–"), h("span", { class: "change" }, ""))),
    h("div", { class: "chart-sub" }, h("span", { class: "range" }, ""), h("span", { class: "position" }, "")),
    h("div", { class: "chart-wrap" }, s.canvas, s.newsLayer),
    s.newsTip);
  const after = [...charts.querySelectorAll(".chart-card")].find((c) => c.dataset.symbol > symbol);
  charts.insertBefore(s.card, after || null);
  return s.card;
}

function addBar(bar) {
  const t = Date.parse(bar.ts);
  if (!isFinite(t) || !isFinite(bar.close)) return;
  const s = seriesFor(bar.symbol);
  const bars = s.bars;
  if (!bars.length || t > bars[bars.length - 1].t) {
    bars.push({ t, close: bar.close });
  } else {
    // out of order or an update of a bar we have: insert / replace in place
    let i = bars.length - 1;
    while (i >= 0 && bars[i].t > t) i--;
    if (i >= 0 && bars[i].t === t) bars[i].close = bar.close;
    else bars.splice(i + 1, 0, { t, close: bar.close });
  }
  if (bars.length > MAX_POINTS) bars.splice(0, bars.length - MAX_POINTS);
  if (s.tick && s.tick.t <= t) s.tick = null;
  cardFor(bar.symbol, s);
  s.dirty = true;
}

function addTick(tick) {
  const t = Date.parse(tick.ts);
  if (!isFinite(t)) return;
  const s = seriesFor(tick.symbol);
  if (!s.tick || t >= s.tick.t) s.tick = { t, price: tick.price };
  cardFor(tick.symbol, s);
  s.dirty = true;
}

function lastPrice(s) {
  if (s.tick && (!s.bars.length || s.tick.t >= s.bars[s.bars.length - 1].t)) return s.tick.price;
  return s.bars.length ? s.bars[s.bars.length - 1].close : null;
}

function drawChart(symbol, s) {
  const canvas = s.canvas;
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 340;
  const height = canvas.clientHeight || 170;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const points = s.bars.map((b) => ({ t: b.t, v: b.close }));
  if (s.tick && (!points.length || s.tick.t > points[points.length - 1].t)) points.push({ t: s.tick.t, v: s.tick.price, live: true });
  const head = s.card.querySelector(".last-price");
  const change = s.card.querySelector(".change");
  const last = lastPrice(s);
  head.textContent = price(last);
  if (points.length >= 2) {
    const first = points[0].v;
    const delta = (last - first) / first;
    change.textContent = (delta >= 0 ? "+" : "") + (100 * delta).toFixed(1) + "%";
    change.className = "change " + signClass(delta);
  }
  s.card.querySelector(".range").textContent = points.length ? day(points[0].t) + " → " + day(points[points.length - 1].t) : "";
  if (!points.length) return;

  const pad = { l: 6, r: 46, t: 8, b: 16 };
  let tMin = points[0].t;
  let tMax = points[points.length - 1].t;
  if (tMax === tMin) { tMin -= 43200000; tMax += 43200000; }
  let vMin = Infinity;
  let vMax = -Infinity;
  for (const p of points) { vMin = Math.min(vMin, p.v); vMax = Math.max(vMax, p.v); }
  if (vMax === vMin) { vMin *= 0.99; vMax *= 1.01; }
  const span = vMax - vMin;
  vMin -= span * 0.08;
  vMax += span * 0.08;
  const x = (t) => pad.l + ((t - tMin) / (tMax - tMin)) * (width - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - vMin) / (vMax - vMin)) * (height - pad.t - pad.b);

  // grid and labels
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#8593a3";
  ctx.strokeStyle = "rgba(133,147,163,0.14)";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 3; i++) {
    const v = vMin + ((vMax - vMin) * i) / 3;
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.l, yy); ctx.lineTo(width - pad.r, yy); ctx.stroke();
    ctx.fillText(price(v), width - pad.r + 4, yy + 3);
  }
  ctx.fillText(day(tMin), pad.l, height - 3);
  const endLabel = day(tMax);
  ctx.fillText(endLabel, width - pad.r - ctx.measureText(endLabel).width, height - 3);

  // area + line
  const up = points[points.length - 1].v >= points[0].v;
  const color = up ? "#2ecc71" : "#ff5c5c";
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
  ctx.lineTo(x(points[points.length - 1].t), height - pad.b);
  ctx.lineTo(x(points[0].t), height - pad.b);
  ctx.closePath();
  const gradient = ctx.createLinearGradient(0, pad.t, 0, height - pad.b);
  gradient.addColorStop(0, up ? "rgba(46,204,113,0.22)" : "rgba(255,92,92,0.22)");
  gradient.addColorStop(1, "rgba(0,0,0,0)");
  ctx.fillStyle = gradient;
  ctx.fill();
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.stroke();

  // the price at time t, for markers: the last point at or before t
  const at = (t) => {
    let lo = 0;
    let hi = points.length - 1;
    if (t <= points[0].t) return points[0].v;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (points[mid].t <= t) lo = mid; else hi = mid - 1;
    }
    return points[lo].v;
  };

  // fills: small amber dots at their price
  ctx.fillStyle = "#f5b942";
  for (const f of s.fills) {
    if (f.t < tMin || f.t > tMax) continue;
    ctx.beginPath(); ctx.arc(x(f.t), y(Math.min(vMax, Math.max(vMin, f.price))), 2.5, 0, 2 * Math.PI); ctx.fill();
  }
  // decisions: triangles below (buy) / above (sell) the line
  let markers = 0;
  for (const d of s.decisions) {
    if (d.action === "HOLD" || d.t < tMin || d.t > tMax) continue;
    markers += 1;
    const xx = x(d.t);
    const yy = y(at(d.t));
    ctx.fillStyle = d.action === "BUY" ? "#2ecc71" : "#ff5c5c";
    ctx.beginPath();
    if (d.action === "BUY") { ctx.moveTo(xx, yy + 3); ctx.lineTo(xx - 4, yy + 10); ctx.lineTo(xx + 4, yy + 10); }
    else { ctx.moveTo(xx, yy - 3); ctx.lineTo(xx - 4, yy - 10); ctx.lineTo(xx + 4, yy - 10); }
    ctx.closePath();
    ctx.fill();
  }
  s.card.dataset.points = String(points.length);
  s.card.dataset.markers = String(markers);
  placeNewsMarkers(symbol, s, x, (t) => y(at(t)), tMin, tMax);
  // last price tag
  const lastY = y(points[points.length - 1].v);
  ctx.fillStyle = color;
  ctx.fillRect(width - pad.r + 1, lastY - 7, pad.r - 2, 14);
  ctx.fillStyle = "#0f1419";
  ctx.fillText(price(points[points.length - 1].v), width - pad.r + 4, lastY + 3);
}

// ---- news markers --------------------------------------------------------------------------------------

// News as DOM markers over the canvas (so hover, focus and click work like on any element): a dot on
// the price line at the item's time; hover shows its headline, a click keeps it shown.
function placeNewsMarkers(symbol, s, x, yAt, tMin, tMax) {
  const items = [...s.news.values()].filter((n) => n.t >= tMin && n.t <= tMax).sort((a, b) => a.t - b.t)
    .slice(-MAX_NEWS_PER_CHART);
  const keep = new Set(items.map((n) => n.id));
  for (const [id, marker] of s.newsEls) if (!keep.has(id)) { marker.remove(); s.newsEls.delete(id); }
  for (const n of items) {
    let marker = s.newsEls.get(n.id);
    if (!marker) {  // made once per item, then only moved: charts redraw on every tick
      marker = h("button", { class: "news-marker", type: "button", "data-news-id": n.id, title: newsTitle(n),
                             "aria-label": symbol + " news: " + n.headline });
      marker.addEventListener("mouseenter", () => showNews(s, s.news.get(n.id) || n));
      marker.addEventListener("focus", () => showNews(s, s.news.get(n.id) || n));
      marker.addEventListener("mouseleave", () => hideNews(s));
      marker.addEventListener("blur", () => hideNews(s));
      marker.addEventListener("click", () => {
        s.pinned = s.pinned === n.id ? null : n.id;
        if (s.pinned) showNews(s, s.news.get(n.id) || n); else hideNews(s);
      });
      s.newsEls.set(n.id, marker);
      s.newsLayer.append(marker);
    }
    marker.style.left = x(n.t).toFixed(1) + "px";
    marker.style.top = yAt(n.t).toFixed(1) + "px";
  }
  s.card.dataset.news = String(items.length);
}

function newsTitle(n) {
  return day(n.t) + " · " + n.source + ": " + n.headline;
}

function showNews(s, n) {
  const tip = s.newsTip;
  const parts = [
    h("div", { class: "dim" }, stamp(n.ts || n.t) + " · " + n.source),
    n.url ? h("a", { class: "headline", href: n.url, target: "_blank", rel: "noopener noreferrer" }, n.headline)
          : h("div", { class: "headline" }, n.headline)];
  if (n.body) parts.push(h("div", { class: "body" }, n.body));
  tip.replaceChildren(...parts);  // (replaceChildren would write a null out as "null")
  tip.dataset.newsId = n.id;
  tip.hidden = false;
  tip.classList.toggle("pinned", s.pinned === n.id);
  for (const [id, m] of s.newsEls) m.classList.toggle("pinned", id === s.pinned);
}

// back to the pinned headline, if any, else nothing
function hideNews(s) {
  const pinned = s.pinned ? s.news.get(s.pinned) : null;
  if (pinned) { showNews(s, pinned); return; }
  s.newsTip.hidden = true;
  for (const m of s.newsEls.values()) m.classList.remove("pinned");
}

// Items come from the vault (REST), live (news.items) and from the analyst's citations (no summary):
// what one source lacks is kept from another.
function addNews(symbol, n) {
  const t = Date.parse(n.ts);
  if (!isFinite(t) || !n.id) return;
  const s = seriesFor(symbol);
  const known = s.news.get(n.id);
  const item = { id: n.id, t, ts: n.ts, source: n.source || (known ? known.source : ""), headline: n.headline,
                 body: n.body || (known ? known.body : ""), url: n.url || (known ? known.url : null) };
  if (known && ["t", "source", "headline", "body", "url"].every((k) => known[k] === item[k])) return;
  s.news.set(n.id, item);
  const marker = s.newsEls.get(n.id);  // kept (it may be under the pointer), retitled
  if (marker) { marker.title = newsTitle(item); marker.setAttribute("aria-label", symbol + " news: " + item.headline); }
  if (s.news.size > 2 * MAX_NEWS_PER_CHART) s.news.delete(s.news.keys().next().value);
  if (s.newsTip && !s.newsTip.hidden && s.newsTip.dataset.newsId === n.id) showNews(s, item);  // shown: keep it current
  s.dirty = true;
}

async function refreshNews() {
  const charted = [...state.series.entries()].filter(([, s]) => s.card && s.bars.length);
  await Promise.all(charted.map(async ([symbol, s]) => {
    const since = new Date(s.bars[0].t).toISOString();
    const until = new Date(s.bars[s.bars.length - 1].t + 86400000).toISOString();
    try {
      const data = await api("/v1/news?symbol=" + encodeURIComponent(symbol) + "&since=" + encodeURIComponent(since)
        + "&until=" + encodeURIComponent(until) + "&limit=" + MAX_NEWS_PER_CHART);
      for (const n of data.news || []) addNews(symbol, n);
    } catch (error) {
      console.warn("news:", error);
    }
  }));
}

// ---- the analyst's votes and the headlines they cite ---------------------------------------------------

function scheduleAnalyst(ms) {
  clearTimeout(state.analystTimer);
  state.analystTimer = setTimeout(refreshAnalyst, ms);
}

async function refreshAnalyst() {
  try {
    // with ?symbols=, the votes on those symbols; else the latest of all
    const paths = state.only ? [...state.only].map((symbol) => "/v1/analyst/votes?symbol=" + encodeURIComponent(symbol)
      + "&limit=" + MAX_ANALYST_VOTES) : ["/v1/analyst/votes?limit=" + MAX_ANALYST_VOTES];
    const answers = await Promise.all(paths.map(api));
    const votes = answers.flatMap((a) => a.votes || []);
    votes.sort((a, b) => Date.parse(b.ts) - Date.parse(a.ts) || String(b.signal_id).localeCompare(String(a.signal_id)));
    renderAnalyst(votes.slice(0, MAX_ANALYST_VOTES));
  } catch (error) {
    console.warn("analyst:", error);
  }
}

function citedItem(c) {
  const text = c.headline === null || c.headline === undefined ? "news " + c.id.slice(0, 8) + "… (not in the vault yet)" : c.headline;
  const head = c.url ? h("a", { href: c.url, target: "_blank", rel: "noopener noreferrer" }, text) : h("span", {}, text);
  return h("li", { "data-news-id": c.id }, h("span", { class: "dim" }, day(c.ts) + (c.source ? " · " + c.source : "") + " "), head);
}

function renderAnalyst(votes) {
  const list = $("analyst-votes");
  if (!votes.length) {
    list.replaceChildren(h("li", { class: "empty-row" }, "no analyst votes yet"));
    return;
  }
  list.replaceChildren(...votes.map((v) => h("li", { class: "analyst-vote", "data-signal-id": v.signal_id, "data-symbol": v.symbol },
    h("div", { class: "vote-head" },
      h("span", { class: "dim" }, stamp(v.ts)), h("b", {}, v.symbol),
      h("span", { class: "badge " + v.action }, v.action),
      h("span", { class: "confidence" }, "confidence " + fixed(v.confidence, 2))),
    h("div", { class: "rationale" }, v.rationale || ""),
    (v.cited || []).length ? h("ul", { class: "cited" }, ...v.cited.map(citedItem)) : h("div", { class: "dim" }, "no news cited"))));
  // the headlines it rests on are also markers on its chart
  for (const v of votes) for (const c of v.cited || []) if (c.headline && c.ts) addNews(v.symbol, c);
}

function render() {
  for (const [symbol, s] of state.series) {
    if (!s.dirty || !s.card) continue;
    s.dirty = false;
    drawChart(symbol, s);
  }
  requestAnimationFrame(render);
}

window.addEventListener("resize", () => { for (const s of state.series.values()) s.dirty = true; });

// ---- decisions, verdicts, fills, signals -----------------------------------------------------------------

function voteChips(votes) {
  const box = h("div", { class: "votes" });
  for (const v of votes || []) {
    box.append(h("span", { class: "vote " + v.action, title: v.signal_id || "" },
      v.agent + " ", h("b", {}, v.action), " " + fixed(v.confidence, 2) + "×" + fixed(v.weight, 2)));
  }
  if (!votes || !votes.length) box.append(h("span", { class: "dim" }, "no votes"));
  return box;
}

function verdictCell(verdict) {
  if (!verdict || !verdict.verdict) return h("span", { class: "dim" }, "pending");
  const codes = (verdict.reason_codes || []).join(", ");
  return h("span", {}, h("span", { class: "badge " + verdict.verdict, title: codes }, verdict.verdict),
    verdict.approved_quantity !== null && verdict.approved_quantity !== undefined
      ? h("span", { class: "dim" }, " " + fixed(verdict.approved_quantity, 0)) : null);
}

function addDecision(d, live) {
  if (!d || !d.decision_id || state.seenDecisions.has(d.decision_id)) return;
  state.seenDecisions.add(d.decision_id);
  if (state.seenDecisions.size > 5000) state.seenDecisions.delete(state.seenDecisions.values().next().value);
  const t = Date.parse(d.ts);
  const s = seriesFor(d.symbol);
  s.decisions.push({ t, action: d.action, id: d.decision_id });
  if (s.decisions.length > 300) s.decisions.splice(0, s.decisions.length - 300);
  s.dirty = true;

  const tbody = $("decisions").tBodies[0];
  clearEmpty(tbody);
  const verdict = d.verdict ? d : state.verdicts.get(d.decision_id);
  const row = h("tr", { "data-decision-id": d.decision_id, "data-symbol": d.symbol, class: live ? "flash" : "" },
    h("td", {}, stamp(d.ts)),
    h("td", {}, h("b", {}, d.symbol)),
    h("td", {}, h("span", { class: "badge " + d.action }, d.action)),
    h("td", { class: "num " + signClass(d.target_position) }, fixed(d.target_position, 2)),
    h("td", { class: "num" }, pct(d.agreement)),
    h("td", { class: "verdict" }, verdictCell(verdict)),
    h("td", { title: d.rationale || "" }, voteChips(d.votes)));
  tbody.insertBefore(row, tbody.firstChild);  // latest arrival first (history is loaded oldest first)
  state.decisions.set(d.decision_id, row);
  while (tbody.rows.length > MAX_DECISION_ROWS) {
    const old = tbody.rows[tbody.rows.length - 1];
    state.decisions.delete(old.dataset.decisionId);
    old.remove();
  }
}

function addVerdict(v) {
  state.verdicts.set(v.decision_id, v);
  if (state.verdicts.size > 500) state.verdicts.delete(state.verdicts.keys().next().value);
  const row = state.decisions.get(v.decision_id);
  if (row) {
    const cell = row.querySelector(".verdict");
    cell.replaceChildren(verdictCell(v));
  }
}

function addFill(f, live) {
  if (state.fills.has(f.fill_id)) return;
  state.fills.add(f.fill_id);
  if (state.fills.size > 5000) state.fills.delete(state.fills.values().next().value);
  const s = seriesFor(f.symbol);
  s.fills.push({ t: Date.parse(f.ts), price: f.price, side: f.side });
  if (s.fills.length > 300) s.fills.splice(0, s.fills.length - 300);
  s.dirty = true;
  const tbody = $("fills").tBodies[0];
  clearEmpty(tbody);
  tbody.insertBefore(h("tr", { class: live ? "flash" : "", "data-fill-id": f.fill_id },
    h("td", {}, stamp(f.ts)), h("td", {}, f.account), h("td", {}, h("b", {}, f.symbol)),
    h("td", {}, h("span", { class: "badge " + f.side }, f.side)),
    h("td", { class: "num" }, fixed(f.quantity, 0)), h("td", { class: "num" }, price(f.price)),
    h("td", { class: "num" }, fixed(f.fee, 2))), tbody.firstChild);
  while (tbody.rows.length > MAX_FILL_ROWS) tbody.rows[tbody.rows.length - 1].remove();
  if (live) scheduleBook(300);
}

function addSignal(sig) {
  state.agentsLive.set(sig.agent, { ts: sig.ts, action: sig.action, symbol: sig.symbol });
  if (sig.agent === "analyst") scheduleAnalyst(500);
  const row = document.querySelector(`#agents tr[data-agent="${CSS.escape(sig.agent)}"] .last`);
  if (row) row.textContent = stamp(sig.ts) + " " + sig.symbol + " " + sig.action;
}

// ---- book (positions, PnL) and agents --------------------------------------------------------------------

function scheduleBook(ms) {
  clearTimeout(state.bookTimer);
  state.bookTimer = setTimeout(refreshBook, ms);
}

async function refreshBook() {
  try {
    const [pnl, positions] = await Promise.all([api("/v1/pnl"), api("/v1/positions")]);
    renderPnl(pnl.accounts || []);
    renderPositions(positions.positions || []);
  } catch (error) {
    console.warn("book:", error);
  } finally {
    if (!state.stopped) scheduleBook(BOOK_POLL_MS);
  }
}

function renderPnl(accounts) {
  const select = $("account-select");
  const names = accounts.map((a) => a.account);
  if (!state.account || !names.includes(state.account)) {
    // default: the account updated last
    const latest = [...accounts].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)))[0];
    state.account = latest ? latest.account : null;
  }
  if ([...select.options].map((o) => o.value).join("|") !== names.join("|")) {
    select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  }
  select.value = state.account || "";
  const a = accounts.find((x) => x.account === state.account);
  const set = (id, text, cls) => { const el = $(id); el.textContent = text; el.className = cls || ""; };
  if (!a) {
    ["pnl-equity", "pnl-cash", "pnl-realised", "pnl-unrealised", "pnl-fees", "pnl-exposure"].forEach((id) => set(id, "–"));
    return;
  }
  set("pnl-equity", money(a.equity));
  set("pnl-cash", money(a.cash));
  set("pnl-realised", signed(a.realised_pnl), signClass(a.realised_pnl));
  set("pnl-unrealised", signed(a.unrealised_pnl), signClass(a.unrealised_pnl));
  set("pnl-fees", money(a.fees));
  set("pnl-exposure", pct(a.gross_exposure) + " / " + pct(a.net_exposure));
}

function renderPositions(positions) {
  const rows = positions.filter((p) => p.account === state.account && p.quantity !== 0);
  const tbody = $("positions").tBodies[0];
  for (const s of state.series.values()) if (s.card) s.card.querySelector(".position").textContent = "";
  if (!rows.length) {
    tbody.replaceChildren(h("tr", { class: "empty-row" }, h("td", { colSpan: 6 }, "no open positions")));
    return;
  }
  tbody.replaceChildren(...rows.map((p) => h("tr", { "data-symbol": p.symbol },
    h("td", {}, h("b", {}, p.symbol)), h("td", { class: "num " + signClass(p.quantity) }, fixed(p.quantity, 0)),
    h("td", { class: "num" }, price(p.avg_price)), h("td", { class: "num" }, price(p.last_price)),
    h("td", { class: "num " + signClass(p.unrealised_pnl) }, signed(p.unrealised_pnl)),
    h("td", { class: "num " + signClass(p.realised_pnl) }, signed(p.realised_pnl)))));
  for (const p of rows) {
    const s = state.series.get(p.symbol);
    if (s && s.card) s.card.querySelector(".position").textContent = "position " + fixed(p.quantity, 0) + " @ " + price(p.avg_price);
  }
}

async function refreshAgents() {
  try {
    const data = await api("/v1/agents");
    const tbody = $("agents").tBodies[0];
    const agents = data.agents || [];
    if (!agents.length) {
      tbody.replaceChildren(h("tr", { class: "empty-row" }, h("td", { colSpan: 6 }, "no agents yet")));
    } else {
      tbody.replaceChildren(...agents.map((a) => {
        const live = state.agentsLive.get(a.agent);
        const last = live ? stamp(live.ts) + " " + live.symbol + " " + live.action : stamp(a.last_signal_ts || a.last_signal_at);
        return h("tr", { "data-agent": a.agent },
          h("td", {}, h("b", {}, a.agent)), h("td", { class: "num" }, fixed(a.configured_weight, 2)),
          h("td", { class: "num" }, pct(a.hit_rate)), h("td", { class: "num" }, (a.signal_rows || a.signals || 0).toLocaleString("en-US")),
          h("td", { class: "last" }, last),
          h("td", { class: "num " + (a.lag > 1000 ? "down" : "") }, a.lag === null || a.lag === undefined ? "–" : a.lag.toLocaleString("en-US")));
      }));
    }
    const groups = data.consumer_groups || [];
    $("groups").tBodies[0].replaceChildren(...(groups.length ? groups.map((g) => h("tr", { "data-group": g.group },
      h("td", {}, g.group), h("td", { class: "dim" }, g.state),
      h("td", { class: "num " + (g.lag > 1000 ? "down" : "") }, g.lag.toLocaleString("en-US"))))
      : [h("tr", { class: "empty-row" }, h("td", { colSpan: 3 }, data.lag_error || "no agent groups"))]));
    $("agents-updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  } catch (error) {
    console.warn("agents:", error);
  }
}

// ---- the memory agent: hit ratio, evictions, Redis used vs max, its recent rounds -------------------------

function bytes(x) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = Number(x), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return value.toFixed(unit ? 1 : 0) + " " + units[unit];
}

async function refreshMemory() {
  try {
    const data = await api("/v1/memory?limit=" + MAX_MEMORY_ROUNDS);
    const agent = data.agent || {};
    const redis = data.redis || {};
    $("memory-hit-ratio").textContent = pct(agent.hit_ratio);
    $("memory-demotions").textContent = agent.demotions_total === undefined ? "–" : agent.demotions_total.toLocaleString("en-US");
    $("memory-drops").textContent = agent.drops_total === undefined ? "–" : agent.drops_total.toLocaleString("en-US");
    $("memory-used").textContent = redis.error ? "Redis down" : bytes(redis.used_bytes) + " / " + bytes(redis.max_bytes);
    const share = redis.max_bytes ? Math.min(1, redis.used_bytes / redis.max_bytes) : 0;
    const fill = $("memory-bar-fill");
    fill.style.width = (100 * share).toFixed(1) + "%";
    fill.className = share > 0.85 ? "high" : "";
    if (agent.policy_version) $("memory-policy").textContent = "policy " + agent.policy_version;
    const rounds = data.decisions || [];
    $("memory-decisions").replaceChildren(...(rounds.length ? rounds.map((r) => h("li", { class: "memory-round" },
      h("div", {}, h("span", { class: "dim" }, stamp(r.ts) + " "), r.message),
      h("div", { class: "keys" }, (r.keys || []).map((k, i) => (r.actions && r.actions[i] === "drop" ? "✕ " : "↓ ") + k
        + (r.scores && r.scores[i] !== null && r.scores[i] !== undefined ? " (" + fixed(r.scores[i], 2) + ")" : "")).join(" · "))))
      : [h("li", { class: "empty-row" }, "no tiering yet: Redis is under its high watermark")]));
  } catch (error) {
    console.warn("memory:", error);
  }
}

// ---- websocket -------------------------------------------------------------------------------------------

function connect() {
  if (state.stopped) return;
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${window.location.host}/v1/stream?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    setStatus("subscribing", "pill-off");
    // since: the first time 0, to get what the bridge still buffers (recent fills, verdicts, ticks...)
    const subscribe = { action: "subscribe", topics: STREAM_TOPICS, since: state.lastId === null ? 0 : state.lastId };
    ws.send(JSON.stringify(subscribe));
  };
  ws.onmessage = (message) => {
    let m;
    try { m = JSON.parse(message.data); } catch (e) { return; }
    if (m.type === "event") onEvent(m);
    else if (m.type === "subscribed") {
      state.retryMs = 500;
      setStatus("live", "pill-on");
      $("heartbeat").textContent = new Date().toISOString().slice(11, 19);
    }
    else if (m.type === "heartbeat") $("heartbeat").textContent = m.ts.slice(11, 19);
    else if (m.type === "error") console.warn("stream:", m.error);
  };
  ws.onclose = (event) => {
    if (state.stopped) return;
    setStatus(event.code === 1013 ? "catching up" : "reconnecting", "pill-off");
    if (!opened) {
      // the upgrade was refused: find out whether the token is the reason
      api("/v1/agents").catch(() => {});
    }
    setTimeout(connect, event.code === 1013 ? 100 : state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 10000);
  };
}

function onEvent(m) {
  state.lastId = m.id;
  countEvent();
  const v = m.value;
  if (!v) return;
  switch (m.topic) {
    case "market.bars": addBar(v); break;
    case "market.ticks": addTick(v); break;
    case "consensus.decisions": addDecision(v, true); break;
    case "risk.verdicts": addVerdict(v); break;
    case "fills": addFill(v, true); break;
    case "agent.signals": addSignal(v); break;
    case "news.items": for (const symbol of v.symbols || []) addNews(symbol, v); break;
    default: break;
  }
}

// ---- start -----------------------------------------------------------------------------------------------

async function loadHistory() {
  try {
    const [bars, decisions, fills] = await Promise.all([
      api("/v1/bars?limit=4000"), api("/v1/decisions?limit=" + MAX_DECISION_ROWS), api("/v1/fills?limit=" + MAX_FILL_ROWS)]);
    for (const bar of bars.bars || []) addBar(bar);
    for (const d of (decisions.decisions || []).slice().reverse()) addDecision(d, false);
    for (const f of (fills.fills || []).slice().reverse()) addFill(f, false);
  } catch (error) {
    console.warn("history:", error);
  }
}

async function start() {
  initToken();
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem("algo.token", token);
    window.location.reload();
  });
  $("account-select").addEventListener("change", (event) => { state.account = event.target.value; refreshBook(); });
  if (!state.token) {
    showLogin("");
    return;
  }
  requestAnimationFrame(render);
  connect();
  await loadHistory();
  refreshBook();
  refreshAgents();
  refreshNews();
  refreshAnalyst();
  refreshMemory();
  setInterval(() => { if (!state.stopped) refreshAgents(); }, AGENTS_POLL_MS);
  setInterval(() => { if (!state.stopped) refreshMemory(); }, MEMORY_POLL_MS);
  setInterval(() => { if (!state.stopped) { refreshNews(); refreshAnalyst(); } }, NEWS_POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
