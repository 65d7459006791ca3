/* lmrec console: plain browser JavaScript, no build step, no third-party code.
 *
 * Every text from the server is put into the page with textContent / text nodes, never as markup.
 * The API key (when the server has keys) lives in this tab's sessionStorage and travels only in the
 * Authorization header of fetch calls: never in a URL, never in the page.
 */
(function () {
  "use strict";

  var cfg = {};
  try { cfg = JSON.parse(document.body.dataset.config || "{}"); } catch (e) { cfg = {}; }
  var KEY = "lmrec.apiKey";
  var $ = function (id) { return document.getElementById(id); };

  // ------------------------------------------------------------------ DOM helpers (text only)
  function el(tag, props) {
    var node = document.createElement(tag);
    var key;
    props = props || {};
    for (key in props) {
      if (!Object.prototype.hasOwnProperty.call(props, key)) continue;
      var value = props[key];
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else if (key === "data") Object.keys(value).forEach(function (k) { node.dataset[k] = value[k]; });
      else node.setAttribute(key, String(value));
    }
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }
  function add(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return; }
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function fmt(x, digits) {
    if (x === null || x === undefined || (typeof x === "number" && !isFinite(x))) return "–";
    if (typeof x === "number") return Number.isInteger(x) ? String(x) : x.toFixed(digits === undefined ? 4 : digits);
    if (Array.isArray(x)) return x.map(function (v) { return fmt(v, digits); }).join(", ");
    if (typeof x === "object") return JSON.stringify(x);
    return String(x);
  }
  function when(seconds) {
    if (!seconds) return "–";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var out = "";
    for (var i = 0; i < 32; i++) out += Math.floor(Math.random() * 16).toString(16);
    return out;
  }

  // ------------------------------------------------------------------ errors and the API key
  function showError(message) {
    var box = $("error");
    if (!box) return;
    if (!message) { box.hidden = true; clear(box); return; }
    clear(box).textContent = message;
    box.hidden = false;
  }
  function ApiError(status, detail, field) {
    this.status = status;
    this.detail = detail;
    this.field = field;
    this.message = detail;
  }
  ApiError.prototype = Object.create(Error.prototype);

  function keyState() {
    var key = sessionStorage.getItem(KEY);
    var state = $("key-state");
    if (state) state.textContent = key ? "API key set" : (cfg.authRequired ? "no API key" : "");
    var forget = $("key-forget");
    if (forget) forget.hidden = !key;
  }
  function askForKey(message) {
    var panel = $("key-panel");
    if (!panel) return;
    panel.hidden = false;
    $("key-msg").textContent = message || "";
    $("key-input").focus();
  }

  async function api(path, opts) {
    opts = opts || {};
    var headers = { Accept: "application/json" };
    var key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    var body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    var res = await fetch(path, {
      method: opts.method || "GET", headers: headers, body: body, cache: "no-store", credentials: "omit",
    });
    if (!res.ok) {
      var detail = res.status + " " + res.statusText;
      var field = null;
      try {
        var j = await res.json();
        detail = j.detail || j.error || detail;
        field = j.field || null;
        if (j.errors && j.errors.length > 1) {
          detail += ": " + j.errors.map(function (e) { return e.field + ": " + e.msg; }).join("; ");
        }
        if (j.request_id) detail += " (request " + j.request_id + ")";
      } catch (e) { /* not JSON */ }
      if (res.status === 401) askForKey(detail);
      throw new ApiError(res.status, detail, field);
    }
    if (opts.raw) return res;
    var type = res.headers.get("content-type") || "";
    return type.indexOf("json") >= 0 ? res.json() : res.text();
  }
  function report(where) {
    return function (err) {
      var text = err && err.detail ? err.detail : String(err);
      if (where) { where.textContent = text; where.className = "msg bad"; } else showError(text);
      if (!(err instanceof ApiError)) console.error(err);
    };
  }

  // ------------------------------------------------------------------ item cards
  var titles = {};
  async function cardsFor(ids) {
    if (!ids.length) return {};
    var out = {};
    for (var start = 0; start < ids.length; start += 100) {
      var part = ids.slice(start, start + 100);
      var res = await api("/ui/api/items?ids=" + encodeURIComponent(part.join(",")));
      res.items.forEach(function (c) { out[c.item_id] = c; titles[c.item_id] = c.title; });
    }
    return out;
  }
  function attributeList(attrs) {
    var names = Object.keys(attrs || {});
    if (!names.length) return null;
    return el("ul", { class: "attrs" }, names.map(function (n) {
      return el("li", null, el("span", { class: "k", text: n }), " ", el("span", { text: fmt(attrs[n], 2) }));
    }));
  }
  function itemCard(itemId, card, extra) {
    card = card || { item_id: itemId, title: itemId, attributes: {} };
    var li = el("li", { class: "card" + (card.live === false ? " dead" : ""), data: { item: itemId } });
    if (card.image) li.append(el("img", { src: card.image, alt: "", loading: "lazy", class: "thumb", referrerpolicy: "no-referrer" }));
    var body = el("div", { class: "body" },
      el("div", { class: "title", text: card.title }),
      el("div", { class: "id muted", text: itemId + (card.live === false ? " (deleted)" : "") }),
      attributeList(card.attributes));
    add(body, extra || null);
    li.append(body);
    return li;
  }

  // ------------------------------------------------------------------ markdown, as text nodes
  function inline(text) {
    var parts = [];
    var re = /(\*\*[^*]+\*\*|`[^`]+`)/g;
    var last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parts.push(text.slice(last, m.index));
      var tok = m[0];
      parts.push(tok[0] === "`" ? el("code", { text: tok.slice(1, -1) }) : el("strong", { text: tok.slice(2, -2) }));
      last = m.index + tok.length;
    }
    if (last < text.length) parts.push(text.slice(last));
    return parts;
  }
  function renderMarkdown(text, into) {
    clear(into);
    var lines = text.replace(/\r\n/g, "\n").split("\n");
    var i = 0;
    function cells(line) {
      return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map(function (c) { return c.trim(); });
    }
    while (i < lines.length) {
      var line = lines[i];
      if (/^```/.test(line)) {
        var code = [];
        i++;
        while (i < lines.length && !/^```/.test(lines[i])) code.push(lines[i++]);
        i++;
        into.append(el("pre", { text: code.join("\n") }));
      } else if (/^#{1,6}\s/.test(line)) {
        var level = Math.min(6, line.match(/^#+/)[0].length + 2);
        into.append(el("h" + level, null, inline(line.replace(/^#+\s*/, ""))));
        i++;
      } else if (/^\s*\|/.test(line)) {
        var table = el("table", { class: "table" });
        var head = cells(line);
        i++;
        if (i < lines.length && /^\s*\|?\s*:?-{2,}/.test(lines[i])) i++;
        table.append(el("thead", null, el("tr", null, head.map(function (c) { return el("th", null, inline(c)); }))));
        var tbody = el("tbody");
        while (i < lines.length && /^\s*\|/.test(lines[i])) {
          tbody.append(el("tr", null, cells(lines[i]).map(function (c) { return el("td", null, inline(c)); })));
          i++;
        }
        table.append(tbody);
        into.append(table);
      } else if (/^\s*[-*]\s+/.test(line)) {
        var ul = el("ul");
        while (i < lines.length && /^\s*[-*]\s+/.test(lines[i])) {
          ul.append(el("li", null, inline(lines[i].replace(/^\s*[-*]\s+/, ""))));
          i++;
        }
        into.append(ul);
      } else if (line.trim() === "") {
        i++;
      } else {
        var para = [];
        while (i < lines.length && lines[i].trim() !== "" && !/^(#|\s*\||```|\s*[-*]\s)/.test(lines[i])) para.push(lines[i++]);
        into.append(el("p", null, inline(para.join(" "))));
      }
    }
  }

  // ------------------------------------------------------------------ page: try it
  function tryPage() {
    var state = { user: null, listNo: 0, seq: 0 };
    var typeSelect = $("event-type");
    (cfg.eventTypes || ["click"]).forEach(function (t) {
      typeSelect.append(el("option", { value: t, text: t }));
    });
    if ((cfg.eventTypes || []).indexOf("click") >= 0) typeSelect.value = "click";
    function syncValueBox() { $("event-value").hidden = typeSelect.value !== "rating"; }
    typeSelect.addEventListener("change", syncValueBox);
    syncValueBox();
    $("query").maxLength = cfg.maxQueryChars || 1000;
    $("k").max = cfg.maxK || 100;

    async function showUser() {
      var events = clear($("events"));
      var label = $("user-state");
      if (!state.user) { label.textContent = "anonymous"; return; }
      label.textContent = "user " + state.user + " …";
      try {
        var summary = await api("/users/" + encodeURIComponent(state.user));
        var cards = await cardsFor(summary.recent_events.map(function (e) { return e.item_id; }));
        label.textContent = "user " + summary.user_id + (summary.known_to_model ? " · known to the model (" +
          summary.n_training_items + " training items)" : " · new to the model") + " · " + summary.n_events + " events";
        if (!summary.recent_events.length) events.append(el("li", { class: "muted", text: "no events yet" }));
        summary.recent_events.forEach(function (e) {
          var title = cards[e.item_id] ? cards[e.item_id].title : e.item_id;
          events.append(el("li", { data: { item: e.item_id, type: e.type } },
            el("span", { class: "tag", text: e.type + (e.value !== null && e.value !== undefined ? " " + e.value : "") }), " ",
            el("span", { text: title }), " ", el("span", { class: "muted", text: when(e.timestamp) })));
        });
      } catch (err) {
        if (err.status === 404) {
          label.textContent = "user " + state.user + " · new: no events and unknown to the model";
          events.append(el("li", { class: "muted", text: "no events yet" }));
        } else report(null)(err);
      }
    }

    function explainBox(itemId) {
      var box = el("details", { class: "why" }, el("summary", { text: "why?" }));
      var loaded = false;
      box.addEventListener("toggle", async function () {
        if (!box.open || loaded) return;
        loaded = true;
        var out = el("div", { class: "explain", text: "…" });
        box.append(out);
        try {
          var body = { item_id: itemId };
          if (state.user) body.user_id = state.user;
          var q = $("query").value.trim();
          if (q) body.query = q;
          var ex = await api("/explain", { method: "POST", json: body });
          await cardsFor(ex.history.map(function (h) { return h.item_id; }).filter(function (id) { return !(id in titles); }));
          clear(out);
          out.append(el("div", { text: ex.reason + " (strategy " + ex.strategy + ", score " + fmt(ex.score) + ")" }));
          if (ex.history.length) {
            out.append(el("div", { class: "muted", text: "history behind it:" }), el("ul", null, ex.history.slice(0, 5).map(function (h) {
              return el("li", { text: (titles[h.item_id] || h.item_id) + " (" + (h.event_type || h.source) + ", similarity " + fmt(h.similarity, 3) + ")" });
            })));
          }
          if (ex.query_terms.length) {
            out.append(el("div", { class: "muted", text: "query terms:" }), el("ul", null, ex.query_terms.slice(0, 6).map(function (t) {
              return el("li", { text: t.term + " " + fmt(t.contribution, 3) });
            })));
          }
        } catch (err) { report(out)(err); }
      });
      return box;
    }

    async function refreshList() {
      var seq = ++state.seq;
      var body = { k: Math.max(1, Math.min(cfg.maxK || 100, parseInt($("k").value, 10) || 10)) };
      if (state.user) body.user_id = state.user;
      var q = $("query").value.trim();
      if (q) body.query = q;
      try {
        var res = await api("/recommend", { method: "POST", json: body });
        var ids = res.items.map(function (it) { return it.item_id; });
        var cards = await cardsFor(ids);
        if (seq !== state.seq) return; // a newer list is on its way
        showError(null);
        state.listNo += 1;
        var list = clear($("recs"));
        list.dataset.list = String(state.listNo);
        list.dataset.ids = ids.join(",");
        $("list-meta").textContent = "list " + state.listNo + " · " + res.strategy + " · model " + res.model_version +
          (res.user_id ? " · for " + res.user_id : " · anonymous") + (q ? " · query “" + q + "”" : "");
        res.items.forEach(function (it, rank) {
          var send = el("button", { type: "button", class: "send", text: "send " + typeSelect.value,
            onclick: function () { sendEvent(it.item_id); } });
          var li = itemCard(it.item_id, cards[it.item_id], [
            el("div", { class: "reason" }, el("span", { class: "rank", text: "#" + (rank + 1) }), " ",
              el("span", { text: it.reason }), " ", el("span", { class: "muted", text: "score " + fmt(it.score, 3) })),
            el("div", { class: "actions" }, send, explainBox(it.item_id)),
          ]);
          list.append(li);
        });
        if (!res.items.length) list.append(el("li", { class: "muted", text: "no items" }));
      } catch (err) { if (seq === state.seq) report(null)(err); }
    }

    async function sendEvent(itemId) {
      var msg = $("event-msg");
      if (!state.user) {
        state.user = "guest-" + newId().slice(0, 8);
        $("user-input").value = state.user;
      }
      var event = { event_id: newId(), user_id: state.user, item_id: itemId, type: typeSelect.value };
      var value = $("event-value").value;
      if (!$("event-value").hidden && value !== "") event.value = Number(value);
      try {
        var res = await api("/events", { method: "POST", json: { events: [event] } });
        msg.className = "msg ok";
        msg.textContent = "sent " + event.type + " on " + (titles[itemId] || itemId) + " as " + state.user +
          (res.duplicates ? " (duplicate)" : "");
        await showUser();
        await refreshList();
      } catch (err) { report(msg)(err); }
    }

    var suggest = debounce(async function () {
      var q = $("user-input").value.trim();
      try {
        var res = await api("/ui/api/users?q=" + encodeURIComponent(q));
        var list = clear($("user-list"));
        res.users.forEach(function (u) { list.append(el("option", { value: u })); });
      } catch (err) { /* a key without the users scope: no suggestions */ }
    }, 200);
    $("user-input").addEventListener("input", suggest);
    $("user-form").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      state.user = $("user-input").value.trim() || null;
      await showUser();
      await refreshList();
    });
    $("user-anon").addEventListener("click", async function () {
      state.user = null;
      $("user-input").value = "";
      await showUser();
      await refreshList();
    });
    $("query").addEventListener("input", debounce(refreshList, 250));
    $("k").addEventListener("change", refreshList);
    $("query-form").addEventListener("submit", function (ev) { ev.preventDefault(); refreshList(); });
    typeSelect.addEventListener("change", function () {
      Array.prototype.forEach.call(document.querySelectorAll("#recs .send"), function (b) { b.textContent = "send " + typeSelect.value; });
    });

    $("item-form").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var msg = $("item-msg");
      var found = clear($("item-found"));
      var itemId = $("item-id").value.trim();
      var text = $("item-text").value;
      var attrs;
      try { attrs = JSON.parse($("item-attrs").value || "{}"); } catch (e) {
        msg.className = "msg bad"; msg.textContent = "attributes: not valid JSON (" + e.message + ")"; return;
      }
      var body = { attributes: attrs };
      if (text.trim()) body.text = text;
      try {
        var res = await api("/items/" + encodeURIComponent(itemId), { method: "PUT", json: body });
        msg.className = "msg ok";
        msg.textContent = (res.created ? "added " : "updated ") + res.item_id + " · index size " + res.index_size;
        var hits = await api("/ui/api/catalog?q=" + encodeURIComponent(itemId) + "&limit=1");
        hits.items.forEach(function (c) { titles[c.item_id] = c.title; found.append(itemCard(c.item_id, c)); });
        if (text.trim()) { $("query").value = text.trim().slice(0, cfg.maxQueryChars || 1000); await refreshList(); }
      } catch (err) { report(msg)(err); }
    });

    return async function () { await showUser(); await refreshList(); };
  }

  // ------------------------------------------------------------------ page: look inside
  function dl(into, pairs) {
    clear(into);
    pairs.forEach(function (p) {
      into.append(el("dt", { text: p[0] }), el("dd", { text: fmt(p[1]) }));
    });
  }
  function metricsTable(metrics) {
    if (metrics === null || metrics === undefined) return el("p", { class: "muted", text: "none in the model directory" });
    var rows = Object.keys(metrics);
    var nested = rows.length && rows.every(function (r) { return metrics[r] && typeof metrics[r] === "object" && !Array.isArray(metrics[r]); });
    if (!nested) {
      return el("table", { class: "table" }, el("tbody", null, rows.map(function (r) {
        return el("tr", null, el("th", { text: r }), el("td", { text: fmt(metrics[r]) }));
      })));
    }
    var cols = [];
    rows.forEach(function (r) { Object.keys(metrics[r]).forEach(function (c) { if (cols.indexOf(c) < 0) cols.push(c); }); });
    return el("table", { class: "table" },
      el("thead", null, el("tr", null, el("th", { text: "" }), cols.map(function (c) { return el("th", { text: c }); }))),
      el("tbody", null, rows.map(function (r) {
        return el("tr", null, el("th", { text: r }), cols.map(function (c) { return el("td", { text: fmt(metrics[r][c]) }); }));
      })));
  }

  function inspectPage() {
    async function similar(itemId) {
      var title = $("similar-title");
      var list = clear($("similar-results"));
      try {
        var res = await api("/items/" + encodeURIComponent(itemId) + "/similar?k=10");
        var cards = await cardsFor([itemId].concat(res.items.map(function (it) { return it.item_id; })));
        title.hidden = false;
        title.textContent = "Similar to " + (cards[itemId] ? cards[itemId].title : itemId);
        res.items.forEach(function (it) {
          list.append(itemCard(it.item_id, cards[it.item_id], el("div", { class: "reason muted", text: "similarity " + fmt(it.score, 3) })));
        });
      } catch (err) { report(null)(err); }
    }
    $("catalog-form").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var list = clear($("catalog-results"));
      try {
        var res = await api("/ui/api/catalog?q=" + encodeURIComponent($("catalog-q").value) + "&limit=20");
        if (!res.items.length) list.append(el("li", { class: "muted", text: "nothing found" }));
        res.items.forEach(function (c) {
          list.append(itemCard(c.item_id, c, [
            c.text !== c.title ? el("div", { class: "text muted", text: c.text }) : null,
            el("button", { type: "button", class: "similar", text: "similar items", onclick: function () { similar(c.item_id); } }),
          ]));
        });
      } catch (err) { report(null)(err); }
    });

    async function model() {
      try {
        var m = await api("/ui/api/model");
        var pairs = [
          ["version", m.model_version], ["type", m.model_type + (m.model_name ? " (" + m.model_name + ")" : "")],
          ["trained on", m.dataset], ["trained at", m.trained_at], ["users × items", m.n_users + " × " + m.n_items],
          ["directory", m.model_dir], ["vector space", m.space], ["index", m.index], ["swaps", m.swaps],
        ];
        if (m.params) pairs.push(["parameters", m.params]);
        Object.keys(m.info || {}).forEach(function (k) { pairs.push([k, m.info[k]]); });
        if (m.last_error) pairs.push(["last swap error", m.last_error]);
        if (m.watching) pairs.push(["watching", m.watching]);
        dl($("model-info"), pairs);
        var box = clear($("model-metrics"));
        box.append(metricsTable(m.metrics));
      } catch (err) { report(null)(err); }
    }

    var last = null;
    async function live() {
      try {
        var s = await api("/ui/api/live");
        var now = performance.now() / 1000;
        var rps = null, eps = null;
        if (last) {
          var dt = Math.max(1e-3, now - last.t);
          rps = (s.requests_total - last.s.requests_total) / dt;
          eps = (s.events_total - last.s.events_total) / dt;
        }
        last = { t: now, s: s };
        var h = s.health || {};
        var lat = s.latency_s || {};
        var ms = function (x) { return x === null || x === undefined ? "–" : (x * 1000).toFixed(1) + " ms"; };
        dl($("live-info"), [
          ["status", h.status + (h.problems && h.problems.length ? " (" + h.problems.join("; ") + ")" : "")],
          ["requests/s", rps === null ? "measuring…" : rps.toFixed(2)],
          ["latency p50 / p95 / p99", ms(lat.p50) + " / " + ms(lat.p95) + " / " + ms(lat.p99)],
          ["events/s", eps === null ? "measuring…" : eps.toFixed(2)],
          ["requests since start", s.requests_total], ["server errors", s.server_errors_total],
          ["events logged", h.events], ["index size (live)", fmt(s.index_items) + " (" + fmt(s.live_items) + " live)"],
          ["profile store", h.profile_store], ["vector space", h.space], ["index", h.index],
          ["quarantined", h.quarantined], ["model swaps", s.swaps],
        ]);
        var body = clear(document.querySelector("#live-routes tbody"));
        Object.keys(s.routes).forEach(function (r) {
          body.append(el("tr", null, el("td", { text: r }), el("td", { text: fmt(s.routes[r].requests) }),
            el("td", { text: s.routes[r].p95_s === null ? "–" : (s.routes[r].p95_s * 1000).toFixed(1) })));
        });
      } catch (err) { report(null)(err); }
    }
    var timer = null;
    return async function () {
      await Promise.all([model(), live()]);
      if (!timer) timer = setInterval(function () { if (!document.hidden) live(); }, 2000);
    };
  }

  // ------------------------------------------------------------------ page: reports
  function reportsPage() {
    var objectUrl = null;
    async function open(entry) {
      $("report-title").textContent = entry.name;
      var md = clear($("report-md"));
      var png = clear($("report-png"));
      var jsonBox = $("report-json-box");
      jsonBox.hidden = true;
      try {
        if (entry.kinds.indexOf("md") >= 0) {
          renderMarkdown(await api("/ui/api/reports/file?kind=md&name=" + encodeURIComponent(entry.name)), md);
        }
        if (entry.kinds.indexOf("png") >= 0) {
          var res = await api("/ui/api/reports/file?kind=png&name=" + encodeURIComponent(entry.name), { raw: true });
          if (objectUrl) URL.revokeObjectURL(objectUrl);
          objectUrl = URL.createObjectURL(await res.blob());
          png.append(el("img", { src: objectUrl, alt: "chart of " + entry.name, class: "chart" }));
        }
        if (entry.kinds.indexOf("json") >= 0) {
          var data = await api("/ui/api/reports/file?kind=json&name=" + encodeURIComponent(entry.name));
          $("report-json").textContent = JSON.stringify(data, null, 2);
          jsonBox.hidden = false;
          if (entry.kinds.indexOf("md") < 0 && data && data.results) md.append(metricsTable(data.results));
        }
      } catch (err) { report(null)(err); }
    }
    return async function () {
      var list = clear($("reports-list"));
      try {
        var res = await api("/ui/api/reports");
        if (!res.configured) { list.append(el("li", { class: "muted", text: "no reports_dir set (lmrec serve --set reports_dir=DIR)" })); return; }
        if (!res.reports.length) { list.append(el("li", { class: "muted", text: "no reports yet" })); return; }
        res.reports.forEach(function (entry) {
          list.append(el("li", null, el("button", { type: "button", class: "link", text: entry.name, onclick: function () { open(entry); } }),
            " ", el("span", { class: "muted", text: entry.kinds.join(" · ") + " · " + entry.modified })));
        });
      } catch (err) { report(null)(err); }
    };
  }

  // ------------------------------------------------------------------ start
  var pages = { try: tryPage, inspect: inspectPage, reports: reportsPage };
  var start = (pages[document.body.dataset.page] || function () { return function () {}; })();
  $("key-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = $("key-input");
    var key = input.value.trim();
    input.value = "";
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("key-panel").hidden = true;
    keyState();
    showError(null);
    start();
  });
  $("key-forget").addEventListener("click", function () {
    sessionStorage.removeItem(KEY);
    keyState();
    askForKey("key forgotten");
  });
  keyState();
  if (cfg.authRequired && !sessionStorage.getItem(KEY)) askForKey("this server needs an API key");
  else start();
})();
