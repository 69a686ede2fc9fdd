// flashedge edge dashboard: polls /dashboard/data.json and redraws. Plain DOM, no libraries.
// Every value from the server is written with textContent or as an SVG attribute, never as HTML.
"use strict";

(function () {
  const POLL_MS = 1500;
  const HISTORY = 60; // samples kept for the sparklines (about 90 s)
  const SVG = "http://www.w3.org/2000/svg";
  const dataURL = "/dashboard/data.json";
  const num = new Intl.NumberFormat("en-US");

  const history = { rps: [], err: [], p99: [], hit: [] };
  let prev = null; // previous snapshot, for rates

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function setText(id, text) { const e = $(id); if (e) e.textContent = text; }

  function fmtInt(n) { return num.format(Math.round(n || 0)); }

  function fmtRate(n) {
    if (n >= 100) return num.format(Math.round(n));
    if (n >= 10) return n.toFixed(1);
    return n.toFixed(2);
  }

  function fmtPct(x) {
    if (!isFinite(x)) return "–";
    const p = x * 100;
    if (p === 0 || p >= 10) return p.toFixed(1) + "%";
    return p.toFixed(2) + "%";
  }

  function fmtMs(ms) {
    if (!ms) return "0 ms";
    if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
    if (ms >= 100) return Math.round(ms) + " ms";
    if (ms >= 1) return ms.toFixed(1) + " ms";
    return ms.toFixed(2) + " ms";
  }

  function fmtDuration(s) {
    s = Math.floor(s || 0);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (s % 60) + "s";
    return s + "s";
  }

  function push(arr, v) {
    arr.push(v);
    if (arr.length > HISTORY) arr.shift();
  }

  function spark(id, values) {
    const box = $(id);
    if (!box) return;
    box.replaceChildren();
    if (values.length < 2) return;
    const max = Math.max(...values, 1e-9);
    const step = 120 / (Math.max(values.length, 20) - 1); // right-aligned; fills in as samples come
    const x0 = 120 - step * (values.length - 1);
    const pts = values.map((v, i) => (x0 + i * step).toFixed(1) + "," + (31 - (v / max) * 29).toFixed(1));
    box.append(svg("polygon", { points: x0.toFixed(1) + ",32 " + pts.join(" ") + " 120,32" }));
    box.append(svg("polyline", { points: pts.join(" ") }));
  }

  // memoryHitRatio is the share of lookups answered by an in-memory layer: the hits of every
  // layer except "store", over the lookups of the first layer (which every lookup reaches).
  function memoryHitRatio(layers) {
    if (!layers.length) return NaN;
    const first = layers[0].hits + layers[0].misses;
    if (!first) return NaN;
    let hits = 0;
    for (const l of layers) if (l.layer !== "store") hits += l.hits;
    return Math.min(1, hits / first);
  }

  function cacheDelta(cur, old) {
    if (!old) return cur;
    const byName = new Map(old.map((l) => [l.layer, l]));
    return cur.map((l) => {
      const o = byName.get(l.layer) || { hits: 0, misses: 0 };
      return { layer: l.layer, hits: Math.max(0, l.hits - o.hits), misses: Math.max(0, l.misses - o.misses) };
    });
  }

  function renderTraffic(s) {
    const t = s.traffic;
    const lat = t.latency_ms || {};
    let rps = NaN, errRate = NaN, clientRate = NaN;
    if (prev) {
      const dt = (Date.parse(s.now) - Date.parse(prev.now)) / 1000;
      const dTotal = t.total_requests - prev.traffic.total_requests;
      if (dt > 0 && dTotal >= 0) {
        rps = dTotal / dt;
        const dServer = t.server_errors - prev.traffic.server_errors;
        const dClient = t.client_errors - prev.traffic.client_errors;
        errRate = dTotal > 0 ? dServer / dTotal : 0;
        clientRate = dTotal > 0 ? dClient / dTotal : 0;
      }
    }
    if (isNaN(errRate) && t.total_requests > 0) { // first sample: since start
      errRate = t.server_errors / t.total_requests;
      clientRate = t.client_errors / t.total_requests;
    }
    setText("rps", isNaN(rps) ? "…" : fmtRate(rps));
    setText("total", fmtInt(t.total_requests));
    setText("err-rate", fmtPct(errRate));
    setText("client-rate", fmtPct(clientRate));
    setText("server-errors", fmtInt(t.server_errors));
    setText("p99", fmtMs(lat.p99));
    setText("p50", fmtMs(lat.p50));
    setText("p90", fmtMs(lat.p90));
    setText("p999", fmtMs(lat.p999));
    setText("uptime", fmtDuration(t.uptime_seconds));
    if (!isNaN(rps)) push(history.rps, rps);
    if (!isNaN(errRate)) push(history.err, errRate);
    push(history.p99, lat.p99 || 0);
    spark("spark-rps", history.rps);
    spark("spark-err", history.err);
    spark("spark-p99", history.p99);
  }

  function renderCache(s) {
    const layers = s.cache || [];
    const recent = cacheDelta(layers, prev && prev.cache);
    let ratio = memoryHitRatio(recent);
    if (isNaN(ratio)) ratio = memoryHitRatio(layers);
    setText("hit-ratio", fmtPct(ratio));
    if (!isNaN(ratio)) push(history.hit, ratio);
    spark("spark-hit", history.hit);

    const box = $("cache");
    if (!layers.length) {
      box.replaceChildren(el("p", { class: "muted", text: "no cache layer reported" }));
      return;
    }
    box.replaceChildren(...layers.map((l) => {
      const total = l.hits + l.misses;
      const r = total ? l.hits / total : 0;
      const fill = el("div");
      fill.style.width = (r * 100).toFixed(1) + "%";
      return el("div", { class: "layer", "data-layer": l.layer }, [
        el("span", { class: "name", text: l.layer }),
        el("div", { class: "bar" }, [fill]),
        el("span", { class: "ratio", "data-field": "ratio", text: total ? fmtPct(r) : "–" }),
        el("span", { class: "counts" }, [
          el("span", { "data-field": "hits", text: fmtInt(l.hits) }), " hits · ",
          el("span", { "data-field": "misses", text: fmtInt(l.misses) }), " misses",
        ]),
      ]);
    }));
  }

  const breakerClass = { closed: "pill-ok", "half-open": "pill-warn", open: "pill-bad" };

  function renderBackends(s) {
    const rows = s.backends || [];
    const body = $("backends");
    if (!rows.length) {
      body.replaceChildren(el("tr", {}, [el("td", { colspan: "6", class: "muted", text: "no backend configured" })]));
      return;
    }
    body.replaceChildren(...rows.map((b) => el("tr", { "data-backend": b.service + " " + b.addr }, [
      el("td", { text: b.service }),
      el("td", { class: "addr", text: b.addr }),
      el("td", {}, [el("span", {
        class: "pill " + (b.healthy ? "pill-ok" : "pill-bad"), "data-field": "health",
        text: b.healthy ? "healthy" : "down", title: b.last_error || "",
      })]),
      el("td", {}, [el("span", { class: "pill " + (breakerClass[b.breaker] || "pill-wait"), "data-field": "breaker", text: b.breaker || "?" })]),
      el("td", { class: "num", text: fmtInt(b.requests) }),
      el("td", { class: "num", text: fmtInt(b.failures) }),
    ])));
  }

  const stateClass = { live: "pill-ok", upcoming: "pill-info", sold_out: "pill-bad", ended: "pill-wait" };

  // shardChart draws one bar per stock shard (red when empty) against the even split of the
  // initial stock, with the count under each bar when there are few enough shards to read.
  function shardChart(shards, initial) {
    const n = shards.length;
    const box = el("div", { class: "shardbox" });
    const chart = svg("svg", { class: "shards", viewBox: "0 0 300 56", preserveAspectRatio: "none", "aria-label": "stock per shard" });
    box.append(chart);
    if (!n) return box;
    const perShard = initial > 0 ? initial / n : 0;
    const top = Math.max(perShard, ...shards, 1);
    const gap = n > 24 ? 1 : 3;
    const w = (300 - gap * (n - 1)) / n;
    shards.forEach((v, i) => {
      const x = (i * (w + gap)).toFixed(2);
      const h = Math.max(v > 0 ? 1 : 2, Math.max(0, v) / top * 56);
      chart.append(svg("rect", { class: "track", x: x, y: 0, width: w.toFixed(2), height: 56, rx: 2 }));
      chart.append(svg("rect", { class: v > 0 ? "fill" : "empty", x: x, y: (56 - h).toFixed(2), width: w.toFixed(2), height: h.toFixed(2), rx: 2 }));
    });
    if (n <= 16) {
      box.append(el("div", { class: "shardlabels" }, shards.map((v, i) =>
        el("span", { "data-shard": String(i), text: "#" + i + " · " + fmtInt(v) }))));
    }
    return box;
  }

  function stat(key, label, value) {
    return el("div", { class: "stat" }, [
      el("div", { class: "k", text: label }),
      el("div", { class: "v", "data-field": key, text: fmtInt(value) }),
    ]);
  }

  function renderSales(s) {
    const err = $("sales-error");
    err.hidden = !s.sales_error;
    err.textContent = s.sales_error || "";
    const sales = s.sales || [];
    const box = $("sales");
    if (!sales.length) {
      box.replaceChildren(el("p", { class: "muted", text: "no flash sale yet" }));
      return;
    }
    box.replaceChildren(...sales.map((sale) => {
      const remaining = sale.shards.reduce((a, b) => a + b, 0);
      const title = sale.product_id ? sale.id + " · product " + sale.product_id : sale.id;
      return el("article", { class: "card sale", "data-sale": sale.id }, [
        el("div", { class: "head" }, [
          el("span", { class: "title", text: title }),
          el("span", { class: "pill " + (stateClass[sale.state] || "pill-wait"), "data-field": "state", text: (sale.state || "unknown").replace("_", " ") }),
        ]),
        el("div", { class: "remain" }, [
          "stock left ", el("span", { "data-field": "remaining", text: fmtInt(remaining) }),
          sale.initial ? " of " + fmtInt(sale.initial) : "",
          " in " + sale.shards.length + " shard" + (sale.shards.length === 1 ? "" : "s"),
        ]),
        shardChart(sale.shards, sale.initial),
        el("div", { class: "stats" }, [
          stat("admitted", "admitted", sale.admitted),
          stat("queued", "queued", sale.queued),
          stat("won", "won", sale.won),
          stat("ordered", "ordered", sale.ordered),
          stat("expired", "expired", sale.expired),
          stat("returned", "returned", sale.returned),
        ]),
      ]);
    }));
  }

  function setConn(ok, text) {
    const c = $("conn");
    c.className = "pill " + (ok ? "pill-ok" : "pill-bad");
    c.textContent = text;
  }

  async function poll() {
    try {
      const resp = await fetch(dataURL, { cache: "no-store", headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const s = await resp.json();
      renderTraffic(s);
      renderCache(s);
      renderBackends(s);
      renderSales(s);
      prev = s;
      setConn(true, "live");
      setText("updated", new Date(s.now).toLocaleTimeString("vi-VN"));
    } catch (e) {
      setConn(false, "offline: " + (e && e.message ? e.message : "no answer"));
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
