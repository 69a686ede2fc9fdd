// flashedge storefront: the shopper's page. Plain JavaScript, no framework, nothing loaded from
// another origin. It talks only to the public JSON API (/api/v1/...) of the page's own origin and
// builds every piece of text with textContent, never as HTML source, so server data cannot inject markup.
//
// The proof-of-work solver is exposed as window.flashedge.solvePow for tests and the curious;
// "?autotest=buy" and "?autotest=pow&cases=[...]" drive the page from its own code for the
// headless browser test (see web/browser_test.go).
'use strict';

(() => {
  const API = '/api/v1';
  const PLACEHOLDER = '/img/placeholder.svg';
  const MSG_NETWORK = 'Không kết nối được tới cửa hàng. Vui lòng kiểm tra mạng rồi thử lại. / ' +
    'Could not reach the shop. Please check your connection and try again.';
  const MSG_UNEXPECTED = 'Đã có lỗi không mong muốn trên trang. Vui lòng tải lại trang. / ' +
    'Something went wrong on this page. Please reload it.';
  const MSG_LOGIN_FIRST = 'Vui lòng đăng nhập trước. / Please log in first.';

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---------------------------------------------------------------- small helpers

  // el builds an element: props are attributes except class, text, and on<event> listeners;
  // false and null props are left out, true gives an empty attribute.
  function el(tag, props, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (k.startsWith('on')) n.addEventListener(k.slice(2), guard(v));
      else n.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids) if (c !== null && c !== undefined && c !== false) n.append(c);
    return n;
  }

  // guard wraps an event handler so a thrown error or rejected promise becomes a banner, not an
  // uncaught error.
  function guard(fn) {
    return (...args) => {
      try {
        const r = fn(...args);
        if (r && typeof r.then === 'function') r.catch(unexpected);
      } catch (err) {
        unexpected(err);
      }
    };
  }

  function unexpected(err) {
    showBanner(MSG_UNEXPECTED + (err && err.message ? ' (' + err.message + ')' : ''));
  }

  const formatters = new Map();
  // formatPrice shows an amount in whole units of currency the Vietnamese way: 749.000 ₫.
  function formatPrice(amount, currency) {
    const cur = typeof currency === 'string' && /^[A-Z]{3}$/.test(currency) ? currency : 'VND';
    let f = formatters.get(cur);
    if (!f) {
      f = new Intl.NumberFormat('vi-VN', { style: 'currency', currency: cur });
      formatters.set(cur, f);
    }
    return f.format(Number(amount) || 0);
  }

  function formatDuration(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, '0');
    return (h > 0 ? h + ':' + pad(m) : pad(m)) + ':' + pad(s % 60);
  }

  function formatDateTime(iso) {
    const t = Date.parse(iso);
    return Number.isFinite(t) ? new Date(t).toLocaleString('vi-VN') : '';
  }

  // uuid returns a random UUID v4. crypto.randomUUID exists only in secure contexts (HTTPS or
  // loopback); getRandomValues exists everywhere.
  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function storage() {
    try {
      return window.sessionStorage;
    } catch {
      return null; // storage disabled: the token lives in memory only
    }
  }

  // ---------------------------------------------------------------- proof of work

  // leadingZeroBits counts the zero bits at the start of a byte array.
  function leadingZeroBits(bytes) {
    let n = 0;
    for (const b of bytes) {
      if (b === 0) {
        n += 8;
        continue;
      }
      return n + Math.clz32(b) - 24;
    }
    return n;
  }

  // sha256 is a plain JavaScript SHA-256 (FIPS 180-4), used when WebCrypto is missing: browsers
  // offer crypto.subtle only in secure contexts, and the shop may be reached over plain HTTP.
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  function sha256(data) {
    const len = data.length;
    const blocks = Math.ceil((len + 9) / 64);
    const m = new Uint8Array(blocks * 64);
    m.set(data);
    m[len] = 0x80;
    const bits = len * 8;
    const dv = new DataView(m.buffer);
    dv.setUint32(m.length - 8, Math.floor(bits / 0x100000000));
    dv.setUint32(m.length - 4, bits >>> 0);
    const H = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const W = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let off = 0; off < m.length; off += 64) {
      for (let i = 0; i < 16; i++) W[i] = dv.getUint32(off + i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
        const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
        W[i] = W[i - 16] + s0 + W[i - 7] + s1;
      }
      let [a, b, c, d, e, f, g, h] = H;
      for (let i = 0; i < 64; i++) {
        const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        h = g; g = f; f = e; e = (d + t1) >>> 0;
        d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    }
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setUint32(i * 4, H[i]);
    return out;
  }

  class PowExpired extends Error {}

  // solvePow finds the smallest decimal counter nonce ("0", "1", ...) such that
  // SHA-256(prefix + nonce), over the UTF-8 bytes, starts with at least `difficulty` zero bits.
  // It hashes in batches and yields to the event loop between them so the page stays responsive.
  // Options: impl "subtle" (WebCrypto; the default when available) or "js"; onProgress(tries);
  // deadline (ms since the epoch) after which it throws PowExpired; signal (AbortSignal).
  // Resolves to {nonce, tries, ms, impl}.
  async function solvePow(prefix, difficulty, opts = {}) {
    const want = Math.max(0, Math.floor(Number(difficulty) || 0));
    if (want > 256) throw new Error('difficulty above 256 bits cannot be met');
    const subtle = window.crypto && crypto.subtle;
    const impl = opts.impl === 'js' || !subtle ? 'js' : 'subtle';
    const enc = new TextEncoder();
    const head = enc.encode(String(prefix));
    const input = (n) => {
      const tail = enc.encode(String(n));
      const b = new Uint8Array(head.length + tail.length);
      b.set(head);
      b.set(tail, head.length);
      return b;
    };
    const started = performance.now();
    let next = 0;
    let batch = 64;
    for (;;) {
      const t0 = performance.now();
      let hashes;
      if (impl === 'subtle') {
        const jobs = [];
        for (let i = 0; i < batch; i++) jobs.push(subtle.digest('SHA-256', input(next + i)));
        hashes = await Promise.all(jobs);
      } else {
        hashes = [];
        for (let i = 0; i < batch; i++) hashes.push(sha256(input(next + i)));
      }
      for (let i = 0; i < hashes.length; i++) {
        if (leadingZeroBits(new Uint8Array(hashes[i])) >= want) {
          const tries = next + i + 1;
          if (opts.onProgress) opts.onProgress(tries);
          return { nonce: String(next + i), tries, ms: Math.round(performance.now() - started), impl };
        }
      }
      next += batch;
      if (opts.onProgress) opts.onProgress(next);
      if (opts.signal && opts.signal.aborted) throw new Error('aborted');
      if (opts.deadline && Date.now() > opts.deadline) throw new PowExpired('challenge expired');
      // Aim at about 25 ms of work per batch, then let the page breathe.
      const took = performance.now() - t0;
      if (took < 12 && batch < 8192) batch *= 2;
      else if (took > 50 && batch > 16) batch /= 2;
      await sleep(0);
    }
  }

  // ---------------------------------------------------------------- banner

  let bannerTimer = 0;
  const bannerRetries = new Set(); // what the Retry button repeats: every failed call since shown

  // showBanner shows a message in the non-blocking banner at the bottom. retry is added to what
  // the banner's Retry button repeats (several loads can fail at once, say in maintenance);
  // info makes it a blue note that hides itself.
  function showBanner(message, { retry = null, info = false } = {}) {
    const b = $('banner');
    $('banner-text').textContent = message;
    b.classList.toggle('info', info && bannerRetries.size === 0);
    if (retry) bannerRetries.add(retry);
    $('banner-retry').hidden = bannerRetries.size === 0;
    b.hidden = false;
    clearTimeout(bannerTimer);
    if (info && bannerRetries.size === 0) bannerTimer = setTimeout(hideBanner, 5000);
  }

  function hideBanner() {
    clearTimeout(bannerTimer);
    $('banner').hidden = true;
    bannerRetries.clear();
  }

  // ---------------------------------------------------------------- API access

  class NetError extends Error {}

  let clockSkew = 0; // server clock minus ours, from the Date header, when it is off by > 2 s
  const serverNow = () => Date.now() + clockSkew;

  // api calls the JSON API and resolves to {status, ok, data, retryAfter} whatever the status;
  // it rejects with NetError only when no answer came (network down, timeout).
  async function api(method, path, { body, headers, timeoutMs = 15000 } = {}) {
    const h = { Accept: 'application/json' };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (session.token) h.Authorization = 'Bearer ' + session.token;
    Object.assign(h, headers);
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    let res;
    let text;
    try {
      res = await fetch(API + path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
        signal: ctrl.signal,
      });
      text = await res.text();
    } catch (err) {
      throw new NetError(err && err.message ? err.message : 'network error');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null; // a proxy's HTML error page, say: errorText falls back on the status
      }
    }
    const date = Date.parse(res.headers.get('Date') || '');
    if (Number.isFinite(date)) {
      const skew = date - Date.now();
      clockSkew = Math.abs(skew) > 2000 ? skew : 0;
    }
    return { status: res.status, ok: res.ok, data, retryAfter: parseRetryAfter(res.headers.get('Retry-After')) };
  }

  // call is api for user actions: a network failure shows the friendly banner with a retry
  // button (when retry is given) and resolves to null.
  async function call(method, path, opts, retry) {
    try {
      return await api(method, path, opts);
    } catch (err) {
      if (!(err instanceof NetError)) throw err;
      showBanner(MSG_NETWORK, { retry: retry || null });
      return null;
    }
  }

  function parseRetryAfter(v) {
    if (!v) return null;
    if (/^\d+$/.test(v.trim())) return Number(v.trim());
    const t = Date.parse(v);
    return Number.isFinite(t) ? Math.max(0, Math.ceil((t - Date.now()) / 1000)) : null;
  }

  // errorText is the message to show for a failed answer: the server's own message (the JSON
  // error shape, bilingual for the maintenance 503) or a sentence chosen by the status.
  function errorText(res) {
    const e = res.data && res.data.error;
    if (e && typeof e.message === 'string' && e.message) return e.message;
    if (res.data && typeof res.data.message === 'string' && res.data.message) return res.data.message;
    switch (true) {
      case res.status === 401:
        return 'Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại. / Please log in again.';
      case res.status === 404:
        return 'Không tìm thấy. / Not found.';
      case res.status === 429:
        return 'Cửa hàng đang đông, vui lòng thử lại sau giây lát. / The shop is busy; please try again shortly.';
      case res.status >= 500:
        return 'Cửa hàng đang bận hoặc bảo trì, vui lòng thử lại sau. / The shop is busy or under maintenance; please try again later.';
      default:
        return `Yêu cầu không thành công (HTTP ${res.status}). / The request failed (HTTP ${res.status}).`;
    }
  }

  // report shows a failed answer in the banner; a 401 also forgets the session.
  function report(res, retry) {
    if (res.status === 401 && session.token) setSession('', '');
    showBanner(errorText(res), { retry: retry || null });
  }

  // inOrder keeps one view's answers in the order their requests were sent, since answers to
  // overlapping requests can arrive in any order (the cart loaded at login and an add clicked at
  // once): take() numbers a request; newest(n) says whether its answer may be shown (no later
  // request's answer was), and makes it the one shown; drop() discards every answer on its way.
  function inOrder() {
    let sent = 0;
    let shown = 0;
    return {
      take: () => ++sent,
      newest(n) {
        if (n < shown) return false;
        shown = n;
        return true;
      },
      drop() {
        shown = ++sent;
      },
    };
  }
  const cartAnswers = inOrder();
  const orderAnswers = inOrder();
  const saleAnswers = inOrder();

  // ---------------------------------------------------------------- session

  const session = { token: '', user: '' };

  function setSession(token, user) {
    session.token = token;
    session.user = user;
    const s = storage();
    if (s) {
      if (token) {
        s.setItem('flashedge.token', token);
        s.setItem('flashedge.user', user);
      } else {
        s.removeItem('flashedge.token');
        s.removeItem('flashedge.user');
      }
    }
    $('login-form').hidden = !!token;
    $('who').hidden = !token;
    $('who-name').textContent = user;
    if (!token) {
      cartAnswers.drop(); // answers still on their way belong to the session that ended
      orderAnswers.drop();
      renderCart(null);
      renderOrders(null);
    }
  }

  async function login(ev) {
    ev.preventDefault();
    const input = $('login-user');
    const name = input.value.trim();
    if (!input.checkValidity() || !name) {
      input.reportValidity();
      return;
    }
    const btn = ev.submitter || $('login-form').querySelector('button');
    btn.disabled = true;
    try {
      const res = await call('POST', '/session', { body: { user: name } }, () => $('login-form').requestSubmit());
      if (!res) return;
      if (!res.ok || !res.data || !res.data.token) {
        report(res);
        return;
      }
      hideBanner();
      setSession(res.data.token, name);
      showBanner(`Đã đăng nhập: ${name}. / Logged in as ${name}.`, { info: true });
      await Promise.all([loadCart(), loadOrders()]);
    } finally {
      btn.disabled = false;
    }
  }

  function logout() {
    setSession('', '');
    $('login-user').focus();
  }

  function needLogin() {
    if (session.token) return false;
    showBanner(MSG_LOGIN_FIRST, { info: true });
    $('login-user').focus();
    return true;
  }

  // ---------------------------------------------------------------- products

  const products = new Map(); // id -> product as last read
  let nextCursor = '';

  function imageURL(p) {
    const img = p && typeof p.image === 'string' ? p.image : '';
    // Same-origin paths only: the policy forbids other origins, and "//host" is another origin.
    return img.startsWith('/') && !img.startsWith('//') ? img : PLACEHOLDER;
  }

  function productImage(p, alt, lazy) {
    const img = el('img', { src: imageURL(p), alt, width: 240, height: 240, loading: lazy ? 'lazy' : null, decoding: 'async' });
    img.addEventListener('error', () => {
      if (!img.src.endsWith(PLACEHOLDER)) img.src = PLACEHOLDER;
    });
    return img;
  }

  const STOCK = {
    in_stock: ['Còn hàng', 'In stock'],
    low: ['Sắp hết', 'Low stock'],
    out_of_stock: ['Hết hàng', 'Out of stock'],
  };
  function stockBadge(state, node) {
    const [vi, en] = STOCK[state] || ['', ''];
    const b = node || el('span');
    b.className = 'badge badge-' + (STOCK[state] ? state : 'unknown');
    b.textContent = vi;
    b.title = en;
    b.hidden = !vi;
    return b;
  }

  function productCard(p) {
    const open = (ev) => openDetail(p.id, ev.currentTarget);
    const pic = el('div', { class: 'pic' }, productImage(p, '', true));
    pic.addEventListener('click', () => openDetail(p.id, null));
    const out = p.stock_state === 'out_of_stock';
    return el('li', { 'data-product-id': p.id },
      el('article', { class: 'card' },
        pic,
        el('div', { class: 'body' },
          el('h3', null, el('button', { type: 'button', class: 'name', onclick: open, text: p.name })),
          el('div', { class: 'meta' },
            el('p', { class: 'price', text: formatPrice(p.price, p.currency) }),
            stockBadge(p.stock_state)),
          el('button', {
            type: 'button',
            class: 'btn btn-light add',
            disabled: out,
            'aria-label': `Thêm ${p.name} vào giỏ / Add to cart`,
            onclick: (ev) => addToCart(p.id, 1, ev.currentTarget),
            text: out ? 'Hết hàng / Sold out' : 'Thêm vào giỏ / Add',
          }))));
  }

  async function loadProducts(cursor, focusNew) {
    const more = $('load-more');
    const status = $('grid-status');
    more.disabled = true;
    if (cursor) status.textContent = 'Đang tải thêm… / Loading more…';
    try {
      const q = '?limit=24' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
      const res = await call('GET', '/products' + q, undefined, () => loadProducts(cursor, focusNew));
      if (!res) {
        status.textContent = 'Chưa tải được sản phẩm. / Products could not be loaded.';
        return;
      }
      if (!res.ok) {
        report(res, () => loadProducts(cursor, focusNew));
        status.textContent = errorText(res);
        return;
      }
      const grid = $('grid');
      const items = Array.isArray(res.data && res.data.items) ? res.data.items : [];
      let first = null;
      for (const p of items) {
        products.set(p.id, p);
        const card = productCard(p);
        grid.append(card);
        first = first || card;
      }
      nextCursor = (res.data && res.data.next_cursor) || '';
      more.hidden = !nextCursor;
      const n = grid.children.length;
      status.textContent = n === 0 ? 'Chưa có sản phẩm nào. / No products yet.' :
        `Đang hiển thị ${n} sản phẩm${nextCursor ? '' : ' (hết danh sách)'}. / Showing ${n} products${nextCursor ? '' : ' (all)'}.`;
      if (focusNew && first) first.querySelector('button.name').focus();
      refreshSaleNames();
    } finally {
      more.disabled = false;
    }
  }

  async function productByID(id) {
    if (products.has(id)) return products.get(id);
    const res = await api('GET', '/products/' + encodeURIComponent(id)).catch(() => null);
    if (!res || !res.ok || !res.data) return null;
    products.set(id, res.data);
    return res.data;
  }

  // ---------------------------------------------------------------- product detail

  let detailOpener = null;
  let detailID = '';

  function fillDetail(p) {
    detailID = p.id;
    const img = $('detail-img');
    img.src = imageURL(p);
    img.alt = p.name || '';
    $('detail-name').textContent = p.name || '';
    $('detail-price').textContent = formatPrice(p.price, p.currency);
    stockBadge(p.stock_state, $('detail-stock'));
    $('detail-desc').textContent = p.description || '';
    $('detail-add').disabled = p.stock_state === 'out_of_stock';
  }

  async function openDetail(id, opener) {
    const dlg = $('detail');
    detailOpener = opener;
    const cached = products.get(id);
    if (cached) fillDetail(cached);
    if (!dlg.open) dlg.showModal();
    history.replaceState(null, '', '#p/' + encodeURIComponent(id));
    const res = await call('GET', '/products/' + encodeURIComponent(id), undefined, () => openDetail(id, opener));
    if (!res) return;
    if (!res.ok) {
      report(res);
      if (!cached) dlg.close();
      return;
    }
    products.set(id, res.data);
    if (dlg.open && detailID !== res.data.id && cached) return; // another product was opened meanwhile
    fillDetail(res.data);
  }

  function closedDetail() {
    if (location.hash.startsWith('#p/')) history.replaceState(null, '', location.pathname + location.search);
    if (detailOpener && detailOpener.isConnected) detailOpener.focus();
    detailOpener = null;
  }

  // ---------------------------------------------------------------- cart and orders

  let cart = null;
  let checkoutKey = ''; // the Idempotency-Key of the checkout click being retried, if any

  function renderCart(c) {
    cart = c;
    const list = $('cart-items');
    // Keep the keyboard where it was when a quantity field is redrawn.
    const focused = list.contains(document.activeElement) ? document.activeElement.dataset.productId : '';
    list.replaceChildren();
    const items = c && Array.isArray(c.items) ? c.items : [];
    let count = 0;
    for (const it of items) {
      count += it.quantity;
      const p = products.get(it.product_id);
      const name = it.name || (p && p.name) || it.product_id;
      const qty = el('input', {
        type: 'number', min: 0, max: 99, value: it.quantity, inputmode: 'numeric',
        'aria-label': `Số lượng ${name} / Quantity`, 'data-product-id': it.product_id,
      });
      qty.addEventListener('change', guard(() => {
        const n = Math.max(0, Math.min(99, Math.floor(Number(qty.value) || 0)));
        return setQuantity(it.product_id, n);
      }));
      list.append(el('li', null,
        el('span', { class: 'name', text: name }),
        el('span', { class: 'line-price', text: formatPrice(it.price * it.quantity, p && p.currency) }),
        el('div', { class: 'controls' },
          qty,
          el('span', { class: 'muted', text: '× ' + formatPrice(it.price, p && p.currency) }),
          el('button', {
            type: 'button', class: 'btn btn-light', text: 'Xoá / Remove',
            'aria-label': `Xoá ${name} khỏi giỏ / Remove from cart`,
            onclick: () => removeItem(it.product_id),
          }))));
    }
    if (focused) {
      const again = [...list.querySelectorAll('input')].find((i) => i.dataset.productId === focused);
      if (again) again.focus();
    }
    $('cart-count').textContent = String(count);
    $('cart-empty').hidden = items.length > 0;
    $('cart-empty').textContent = session.token ?
      'Giỏ hàng trống. / Your cart is empty.' : 'Đăng nhập để xem giỏ hàng. / Log in to see your cart.';
    $('cart-total-row').hidden = items.length === 0;
    $('cart-total').textContent = formatPrice(c ? c.total : 0);
    $('checkout').hidden = items.length === 0;
  }

  let cartLoading = null; // the GET /cart in flight, awaited before an add reads the quantities

  function showCart(n, data) {
    if (cartAnswers.newest(n)) renderCart(data);
  }

  function loadCart() {
    if (!session.token) {
      cartAnswers.drop();
      renderCart(null);
      return Promise.resolve();
    }
    const n = cartAnswers.take();
    const p = (async () => {
      const res = await call('GET', '/cart', undefined, loadCart);
      if (!res) return;
      if (!res.ok) return report(res, loadCart);
      showCart(n, res.data);
    })();
    cartLoading = p;
    const done = () => {
      if (cartLoading === p) cartLoading = null;
    };
    p.then(done, done);
    return p;
  }

  async function putQuantity(productID, quantity) {
    const path = '/cart/items/' + encodeURIComponent(productID);
    const n = cartAnswers.take();
    const res = await call('PUT', path, { body: { quantity } }, () => putQuantity(productID, quantity));
    if (!res) return false;
    if (!res.ok) {
      report(res);
      return false;
    }
    showCart(n, res.data);
    return true;
  }

  async function addToCart(productID, n, btn) {
    if (needLogin()) return;
    if (btn) btn.disabled = true;
    try {
      // The quantity sent is absolute: read it from the cart as loaded, not from before it was.
      if (cartLoading) await cartLoading.catch(() => {});
      const line = cart && Array.isArray(cart.items) ? cart.items.find((i) => i.product_id === productID) : null;
      if (await putQuantity(productID, (line ? line.quantity : 0) + n)) {
        const p = products.get(productID);
        showBanner(`Đã thêm vào giỏ: ${p ? p.name : productID}. / Added to cart.`, { info: true });
      }
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  function setQuantity(productID, n) {
    return putQuantity(productID, n);
  }

  async function removeItem(productID) {
    const path = '/cart/items/' + encodeURIComponent(productID);
    const n = cartAnswers.take();
    const res = await call('DELETE', path, undefined, () => removeItem(productID));
    if (!res) return;
    if (!res.ok) return report(res);
    showCart(n, res.data);
  }

  function orderSummary(o) {
    return el('span', null,
      'Mã đơn / Order ', el('strong', { class: 'oid', 'data-order-id': o.id, text: o.id }),
      ' · ', el('strong', { text: formatPrice(o.total) }));
  }

  async function checkout() {
    if (needLogin()) return;
    const btn = $('checkout');
    const out = $('checkout-result');
    if (!checkoutKey) checkoutKey = uuid(); // kept until a final answer, so a retry is the same click
    btn.disabled = true;
    out.className = 'result';
    out.textContent = 'Đang đặt hàng… / Placing your order…';
    try {
      const res = await call('POST', '/orders', { headers: { 'Idempotency-Key': checkoutKey } }, checkout);
      if (!res) {
        out.textContent = '';
        return;
      }
      const code = res.data && res.data.error ? String(res.data.error.code || '') : '';
      const retryable = res.status >= 500 || res.status === 429 || (res.status === 409 && /progress|pending|running/.test(code));
      if (res.ok) {
        checkoutKey = '';
        out.replaceChildren('Đặt hàng thành công! / Order placed! ', orderSummary(res.data || {}));
        await Promise.all([loadCart(), loadOrders()]);
        return;
      }
      if (!retryable) checkoutKey = '';
      out.className = 'result error';
      out.textContent = errorText(res);
      report(res, retryable ? checkout : null);
    } finally {
      btn.disabled = false;
    }
  }

  function renderOrders(data) {
    const list = $('orders');
    list.replaceChildren();
    const items = data && Array.isArray(data.items) ? data.items.slice() : [];
    items.sort((a, b) => String(b.created_at || '').localeCompare(String(a.created_at || '')));
    for (const o of items) {
      const n = Array.isArray(o.items) ? o.items.reduce((s, i) => s + (i.quantity || 0), 0) : 0;
      const names = Array.isArray(o.items) ? o.items.map((i) => i.name || (products.get(i.product_id) || {}).name || i.product_id).join(', ') : '';
      list.append(el('li', null,
        orderSummary(o),
        o.flash_sale_id ? el('span', { class: 'flash-tag', text: 'Flash sale' }) : null,
        el('div', { class: 'muted', text: `${n} món / items · ${o.status || ''} · ${formatDateTime(o.created_at)}` }),
        names ? el('div', { text: names }) : null));
    }
    $('orders-empty').hidden = items.length > 0;
  }

  async function loadOrders() {
    if (!session.token) return renderOrders(null);
    const n = orderAnswers.take();
    const res = await call('GET', '/orders', undefined, loadOrders);
    if (!res) return;
    if (!res.ok) return report(res, loadOrders);
    if (orderAnswers.newest(n)) renderOrders(res.data);
  }

  // ---------------------------------------------------------------- flash sales

  const sales = new Map(); // id -> sale as last read
  const saleViews = new Map(); // id -> {li, ...parts}
  const buys = new Map(); // id -> the buy in progress or finished for that sale
  const bought = new Map(); // id -> units this page paid for in that sale (for per_user_limit)
  const STATE = {
    upcoming: ['Sắp mở bán', 'Upcoming'],
    live: ['Đang mở bán', 'Live'],
    sold_out: ['Hết suất', 'Sold out'],
    ended: ['Đã kết thúc', 'Ended'],
  };
  let salesTimer = 0;

  async function loadSales() {
    clearTimeout(salesTimer);
    salesTimer = setTimeout(guard(loadSales), 15000);
    const n = saleAnswers.take();
    const res = await call('GET', '/flash-sales', undefined, loadSales);
    const empty = $('flash-empty');
    if (!res) {
      empty.textContent = 'Chưa tải được flash sale. / Flash sales could not be loaded.';
      return;
    }
    if (!res.ok) {
      report(res, loadSales);
      empty.textContent = errorText(res);
      return;
    }
    if (!saleAnswers.newest(n)) return; // a list read before the one on screen
    const items = Array.isArray(res.data && res.data.items) ? res.data.items : [];
    for (const s of items) {
      sales.set(s.id, s);
      renderSale(s);
    }
    const seen = new Set(items.map((s) => s.id));
    for (const [id, v] of saleViews) {
      if (!seen.has(id) && !buys.has(id)) {
        v.li.remove();
        saleViews.delete(id);
        sales.delete(id);
      }
    }
    empty.hidden = saleViews.size > 0;
    empty.textContent = 'Hiện chưa có flash sale. / No flash sales right now.';
  }

  function saleView(s) {
    let v = saleViews.get(s.id);
    if (v) return v;
    v = {
      img: productImage(null, '', false),
      name: el('h3', { text: 'Sản phẩm / Product ' + s.product_id }),
      price: el('span', { class: 'price' }),
      was: el('span', { class: 'was' }),
      state: el('span', { class: 'state' }),
      info: el('p', { class: 'muted row' }),
      timer: el('p', { class: 'row' }),
      buy: el('button', { type: 'button', class: 'btn btn-buy', onclick: () => buy(s.id) }, 'Mua ngay / Buy now'),
      status: el('p', { class: 'status', role: 'status', 'aria-live': 'polite' }),
      progress: el('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Tiến độ xác minh / Verification progress' }),
      queue: el('div', { class: 'queue', hidden: true, role: 'status', 'aria-live': 'polite' }),
      won: el('div', { class: 'won', hidden: true }),
    };
    v.li = el('li', { class: 'sale', 'data-sale-id': s.id },
      v.img,
      el('div', null, v.name, el('div', { class: 'row' }, v.price, v.was, v.state), v.info, v.timer),
      el('div', { class: 'actions' }, v.buy, v.queue, v.progress, v.status, v.won));
    $('flash-list').append(v.li);
    saleViews.set(s.id, v);
    productByID(s.product_id).then((p) => p && renderSale(sales.get(s.id) || s)).catch(unexpected);
    return v;
  }

  function refreshSaleNames() {
    for (const s of sales.values()) renderSale(s);
  }

  function renderSale(s) {
    const v = saleView(s);
    const p = products.get(s.product_id);
    if (s.product_name && !p) v.name.textContent = s.product_name;
    if (p) {
      v.name.textContent = p.name;
      if (v.img.getAttribute('src') !== imageURL(p)) v.img.src = imageURL(p);
      v.was.textContent = p.price > s.price ? formatPrice(p.price, p.currency) : '';
      v.was.hidden = !(p.price > s.price);
      if (p.price > s.price) v.was.title = `Giá gốc / Regular price (−${Math.round(100 - (100 * s.price) / p.price)}%)`;
    }
    v.price.textContent = formatPrice(s.price, p && p.currency);
    const [vi, en] = STATE[s.state] || [s.state, s.state];
    v.state.className = 'state state-' + s.state;
    v.state.textContent = vi;
    v.state.title = en;
    v.li.classList.toggle('live', s.state === 'live');
    v.info.textContent = `${s.stock} suất / units` +
      (s.per_user_limit ? ` · tối đa ${s.per_user_limit}/người / max ${s.per_user_limit} each` : '');

    v.timer.replaceChildren();
    if (s.state === 'upcoming') {
      v.timer.append('Bắt đầu sau / Starts in ', countdown(s.starts_at, 'sale-start'));
    } else if (s.state === 'live') {
      v.timer.append('Kết thúc sau / Ends in ', countdown(s.ends_at, 'sale-end'));
    }
    const b = buys.get(s.id);
    const busy = b && !b.finished;
    const atLimit = s.per_user_limit > 0 && (bought.get(s.id) || 0) >= s.per_user_limit;
    // A sale with a waiting room can be joined from its opening, before the start.
    const wr = s.waiting_room;
    const queueOpen = wr && s.state === 'upcoming' && serverNow() >= Date.parse(wr.opens_at);
    v.buy.textContent = queueOpen ? 'Vào hàng chờ / Join the queue' : 'Mua ngay / Buy now';
    v.buy.hidden = !(s.state === 'live' || queueOpen) || atLimit || (b && b.phase === 'won');
    v.buy.disabled = !!busy;
  }

  function countdown(iso, kind) {
    const until = Date.parse(iso);
    const span = el('span', { class: 'countdown', 'data-until': Number.isFinite(until) ? until : '', 'data-kind': kind });
    span.textContent = Number.isFinite(until) ? formatDuration(until - serverNow()) : '–';
    return span;
  }

  // tick runs every second: it moves every countdown and reacts when one reaches zero.
  let reloadSoon = 0;
  function tick() {
    for (const span of document.querySelectorAll('.countdown[data-until]')) {
      const until = Number(span.dataset.until);
      if (!until) continue;
      const left = until - serverNow();
      span.textContent = formatDuration(left);
      if (left > 0) continue;
      if ((span.dataset.kind === 'sale-start' || span.dataset.kind === 'sale-end') && !reloadSoon) {
        reloadSoon = setTimeout(() => {
          reloadSoon = 0;
          guard(loadSales)();
        }, 800);
      } else if (span.dataset.kind === 'token') {
        const id = span.dataset.sale;
        const b = buys.get(id);
        if (b && b.phase === 'won') tokenExpired(id);
      }
    }
  }

  function setStatus(id, text, progress) {
    const v = saleViews.get(id);
    if (!v) return;
    v.status.textContent = text;
    v.progress.hidden = progress === undefined;
    if (progress !== undefined) v.progress.value = progress;
  }

  function finishBuy(id, text, error) {
    const b = buys.get(id);
    if (b) b.finished = true;
    setStatus(id, text);
    const v = saleViews.get(id);
    if (v) v.status.classList.toggle('error', !!error);
    const s = sales.get(id);
    if (s) renderSale(s);
  }

  const MAX_BUSY_ROUNDS = 10;

  // buy runs the whole attempt for one click: challenge, proof of work, attempt, polling.
  async function buy(id) {
    if (needLogin()) return;
    const prev = buys.get(id);
    if (prev && !prev.finished) return;
    const b = { phase: 'challenge', finished: false, rounds: 0 };
    buys.set(id, b);
    renderSale(sales.get(id));
    try {
      await attemptToBuy(id, b);
    } catch (err) {
      finishBuy(id, MSG_UNEXPECTED, true);
      throw err;
    }
  }

  async function attemptToBuy(id, b) {
    const base = '/flash-sales/' + encodeURIComponent(id);
    let pass = '';
    const s = sales.get(id);
    if (s && s.waiting_room) {
      const turn = await waitTurn(id, b);
      if (!turn) return;
      pass = turn.pass || '';
    }

    for (;;) {
      b.phase = 'challenge';
      setStatus(id, 'Đang nhận thử thách… / Getting a challenge…');
      const ch = await call('POST', base + '/challenge', undefined, () => buy(id));
      if (!ch) return finishBuy(id, MSG_NETWORK, true);
      if (!ch.ok) {
        if (ch.status === 429 && await waitBusy(id, b, ch)) continue;
        if (ch.status === 410 && ch.data && ch.data.error && ch.data.error.code === 'sold_out') return soldOut(id);
        report(ch);
        return finishBuy(id, errorText(ch), true);
      }
      const challenge = ch.data || {};
      const payload = challenge.payload || {};
      if (challenge.kind !== 'pow-sha256') {
        return finishBuy(id, `Trang chưa hỗ trợ thử thách "${challenge.kind}". / This page cannot solve "${challenge.kind}".`, true);
      }
      const difficulty = Number(payload.difficulty) || 0;
      const expected = Math.pow(2, difficulty);
      const expiresAt = Date.parse(challenge.expires_at);

      b.phase = 'solving';
      setStatus(id, 'Đang xác minh bạn là người thật… / Checking you are human…', 0);
      let solved;
      try {
        solved = await solvePow(String(payload.prefix || ''), difficulty, {
          deadline: Number.isFinite(expiresAt) ? expiresAt - clockSkew - 1000 : 0,
          onProgress: (tries) => setStatus(id,
            `Đang xác minh… ${tries.toLocaleString('vi-VN')} phép thử / Checking… ${tries} tries`,
            Math.min(0.99, 1 - Math.exp(-tries / expected))),
        });
      } catch (err) {
        if (!(err instanceof PowExpired)) throw err;
        // Too slow for this challenge: ask for a fresh one, a few times.
        if (++b.rounds > MAX_BUSY_ROUNDS) {
          return finishBuy(id, 'Thiết bị xác minh quá chậm, vui lòng thử lại. / Verification took too long; please try again.', true);
        }
        continue;
      }

      b.phase = 'attempt';
      setStatus(id, 'Đang gửi yêu cầu mua… / Sending your attempt…', 1);
      const key = uuid();
      const body = { challenge_id: challenge.challenge_id, answer: solved.nonce };
      if (pass) body.pass = pass;
      const res = await sendWithRetries(() => api('POST', base + '/attempts', { body, headers: { 'Idempotency-Key': key } }), id);
      if (!res) return finishBuy(id, MSG_NETWORK, true);
      const data = res.data || {};
      const st = data.status;
      if (res.status === 202 || (res.ok && st === 'queued')) {
        if (!data.ticket) return finishBuy(id, errorText(res), true);
        return poll(id, b, data.ticket, Number(data.poll_after_ms) || 1000);
      }
      if (res.ok && (st === 'won' || st === 'lost' || st === 'sold_out')) return decided(id, b, data);
      if (res.status === 410 && st === 'sold_out') return soldOut(id);
      if (res.status === 429 && await waitBusy(id, b, res)) continue;
      if (res.status === 425 || res.status === 410) guard(loadSales)();
      report(res);
      return finishBuy(id, errorText(res), true);
    }
  }

  // waitTurn joins the sale's waiting room and shows the place until the turn comes: it resolves
  // to {pass} when admitted, {} when the sale has no waiting room after all, and null when the
  // buy is over (sold out, place lost, ended, refused). Polls follow the server's poll_after_ms
  // and carry the last answer's queue token, so the edge answers them from memory. The token is
  // kept in sessionStorage: it is the proof of presence, so a reload within hold_seconds of the
  // last poll keeps the place (without it, the edge only knows the last join).
  async function waitTurn(id, b) {
    const path = '/flash-sales/' + encodeURIComponent(id) + '/queue';
    const v = saleViews.get(id);
    const st = storage();
    const key = 'fe.queue.' + id;
    let method = 'POST';
    let token = (st && st.getItem(key)) || '';
    let firstAhead = 0;
    let failures = 0;
    b.phase = 'queue';
    setStatus(id, 'Đang vào hàng chờ… / Joining the queue…');
    for (;;) {
      let res;
      try {
        res = await api(method, path, { headers: token ? { 'X-Queue-Token': token } : {} });
      } catch (err) {
        if (!(err instanceof NetError)) throw err;
        failures++;
        setStatus(id, 'Mất kết nối, đang thử lại… / Connection lost, retrying…');
        await sleep(Math.min(10000, 1000 * 2 ** failures));
        continue;
      }
      if (!res.ok) {
        if (res.status === 409) return {};
        if (res.status === 429 || res.status >= 500) {
          failures++;
          await sleep(1000 * Math.max(res.retryAfter || 0, Math.min(10, 2 ** failures)));
          continue;
        }
        v.queue.hidden = true;
        if (res.status === 410 && res.data && res.data.error && res.data.error.code === 'sold_out') {
          soldOut(id);
          return null;
        }
        report(res);
        finishBuy(id, errorText(res), true);
        return null;
      }
      failures = 0;
      method = 'GET';
      const q = res.data || {};
      if (q.queue_token) {
        token = q.queue_token;
        if (st) st.setItem(key, token);
      }
      if (q.ahead > firstAhead) firstAhead = q.ahead;
      showQueue(id, q, firstAhead);
      switch (q.state) {
        case 'admitted':
          setStatus(id, 'Đến lượt bạn! / Your turn!');
          return { pass: q.pass };
        case 'expired':
          finishBuy(id, 'Bạn đã mất chỗ trong hàng chờ (quá lâu không phản hồi). / You lost your place in the queue.', true);
          return null;
        case 'ended':
          v.queue.hidden = true;
          finishBuy(id, 'Flash sale đã kết thúc. / The flash sale has ended.', true);
          guard(loadSales)();
          return null;
      }
      await sleep(Math.max(500, Number(q.poll_after_ms) || 1000));
    }
  }

  // showQueue renders a queue answer: the place, how many are ahead, a progress bar from the
  // place first seen to the front, and the estimated wait.
  function showQueue(id, q, firstAhead) {
    const v = saleViews.get(id);
    if (!v) return;
    v.queue.hidden = false;
    v.queue.dataset.state = q.state || '';
    v.queue.dataset.position = q.position == null ? '' : String(q.position);
    const parts = [];
    if (q.state === 'waiting') {
      if (q.position == null) {
        parts.push(el('p', { class: 'queue-pos', text: 'Bạn đã vào hàng chờ; thứ tự được bốc thăm lúc mở bán. / You are in the queue; places are drawn at the start.' }));
      } else {
        parts.push(el('p', { class: 'queue-pos' },
          el('strong', { text: `Vị trí / Position #${q.position.toLocaleString('vi-VN')}` }),
          ` · ${Number(q.ahead || 0).toLocaleString('vi-VN')} người phía trước / ahead`));
      }
      if (q.eta_seconds != null) {
        parts.push(el('p', { class: 'queue-eta muted', text: `Chờ khoảng / About ${formatDuration(q.eta_seconds * 1000)}` }));
      }
      const done = firstAhead > 0 ? 1 - Number(q.ahead || 0) / firstAhead : 0;
      parts.push(el('progress', { class: 'queue-bar', max: 1, value: Math.max(0, Math.min(1, done)),
        'aria-label': 'Tiến độ hàng chờ / Queue progress' }));
    } else if (q.state === 'admitted') {
      parts.push(el('p', { class: 'queue-pos', text: 'Đến lượt bạn! Đang xác minh… / Your turn! Verifying…' }));
      parts.push(el('progress', { class: 'queue-bar', max: 1, value: 1, 'aria-label': 'Tiến độ hàng chờ / Queue progress' }));
    } else if (q.state === 'sold_out') {
      parts.push(el('p', { class: 'queue-pos', text: 'Tạm hết suất; giữ chỗ phòng khi có hàng trả lại. / Sold out for now; keeping your place in case units come back.' }));
    }
    v.queue.replaceChildren(...parts);
  }

  // sendWithRetries repeats a request that got no answer (same Idempotency-Key, so the server
  // answers a repeat with its first answer) a few times, then gives up with null.
  async function sendWithRetries(send, id) {
    for (let i = 0; ; i++) {
      try {
        return await send();
      } catch (err) {
        if (!(err instanceof NetError) || i === 3) {
          if (err instanceof NetError) return null;
          throw err;
        }
        setStatus(id, 'Mất kết nối, đang thử lại… / Connection lost, retrying…');
        await sleep(1000 * 2 ** i);
      }
    }
  }

  // waitBusy shows a friendly wait for a 429 and sleeps for its Retry-After; false when the
  // click has been retried often enough.
  async function waitBusy(id, b, res) {
    b.rounds++;
    if (b.rounds > MAX_BUSY_ROUNDS) return false;
    const secs = Math.min(60, Math.max(1, res.retryAfter || 2));
    const until = Date.now() + secs * 1000;
    const msg = errorText(res);
    while (Date.now() < until) {
      const left = Math.ceil((until - Date.now()) / 1000);
      setStatus(id, `Đông khách quá! Tự thử lại sau ${left} giây. / So many shoppers! Retrying in ${left} s. (${msg})`);
      await sleep(Math.min(1000, until - Date.now()));
    }
    return true;
  }

  async function poll(id, b, ticket, every) {
    b.phase = 'queued';
    const path = '/flash-sales/' + encodeURIComponent(id) + '/attempts/' + encodeURIComponent(ticket);
    const wait = Math.min(10000, Math.max(200, every));
    const giveUp = Date.now() + 5 * 60 * 1000;
    let failures = 0;
    while (Date.now() < giveUp) {
      setStatus(id, 'Đang xếp hàng chờ kết quả… / In the queue, waiting for the result…');
      await sleep(failures ? Math.min(10000, wait * 2 ** failures) : wait);
      let res;
      try {
        res = await api('GET', path);
      } catch (err) {
        if (!(err instanceof NetError)) throw err;
        failures++;
        setStatus(id, 'Mất kết nối, đang thử lại… / Connection lost, retrying…');
        continue;
      }
      if (!res.ok) {
        if (res.status >= 500 || res.status === 429) {
          failures++;
          if (res.retryAfter) await sleep(res.retryAfter * 1000);
          continue;
        }
        report(res);
        return finishBuy(id, errorText(res), true);
      }
      failures = 0;
      const st = res.data && res.data.status;
      if (st === 'queued') continue;
      return decided(id, b, res.data);
    }
    return finishBuy(id, 'Chưa có kết quả, vui lòng thử lại sau. / No result yet; please try again later.', true);
  }

  function decided(id, b, r) {
    switch (r.status) {
      case 'won':
        return won(id, b, r);
      case 'sold_out':
        return soldOut(id);
      case 'lost':
        return finishBuy(id, 'Rất tiếc, lần này bạn chưa may mắn. / Sorry, not this time.' +
          (r.reason ? ` (${r.reason})` : ''), true);
      default:
        return finishBuy(id, `Kết quả lạ: ${r.status}. / Unexpected result.`, true);
    }
  }

  function soldOut(id) {
    const s = sales.get(id);
    if (s) s.state = 'sold_out';
    finishBuy(id, 'Đã hết suất! / Sold out!', true);
    guard(loadSales)();
  }

  function won(id, b, r) {
    b.phase = 'won';
    b.token = r.token;
    b.expiresAt = r.expires_at;
    const v = saleViews.get(id);
    setStatus(id, '');
    const timer = countdown(r.expires_at, 'token');
    timer.dataset.sale = id;
    v.won.replaceChildren(
      el('p', null, el('strong', { text: 'Bạn đã giành được suất! / You got one!' })),
      el('p', null, 'Giữ hàng còn / Reserved for ', timer),
      el('button', { type: 'button', class: 'btn btn-pay', onclick: () => pay(id) }, 'Thanh toán / Pay'));
    v.won.hidden = false;
    renderSale(sales.get(id));
    v.won.querySelector('button').focus();
  }

  function tokenExpired(id) {
    const b = buys.get(id);
    b.phase = 'expired';
    const v = saleViews.get(id);
    v.won.hidden = true;
    finishBuy(id, 'Hết thời gian giữ hàng, suất đã được trả lại. / Your reservation expired.', true);
  }

  async function pay(id) {
    const b = buys.get(id);
    if (!b || b.phase !== 'won') return;
    const v = saleViews.get(id);
    const btn = v.won.querySelector('button');
    btn.disabled = true;
    b.payKey = b.payKey || uuid();
    try {
      const res = await call('POST', '/flash-sales/' + encodeURIComponent(id) + '/checkout',
        { body: { token: b.token }, headers: { 'Idempotency-Key': b.payKey } }, () => pay(id));
      if (!res) return;
      if (res.ok) {
        b.phase = 'paid';
        b.order = res.data || {};
        bought.set(id, (bought.get(id) || 0) + 1);
        v.won.replaceChildren(
          el('p', null, el('strong', { text: 'Thanh toán thành công! / Paid!' })),
          el('p', null, orderSummary(b.order)));
        finishBuy(id, '');
        await loadOrders();
        return;
      }
      if (res.status === 409 || res.status === 410) {
        b.phase = 'done';
        v.won.hidden = true;
        report(res);
        return finishBuy(id, errorText(res), true);
      }
      report(res, res.status >= 500 || res.status === 429 ? () => pay(id) : null);
    } finally {
      if (btn.isConnected) btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- self-test driver

  // autotest drives the page through its own buttons, for the headless browser test. It writes
  // its progress and outcome into #autotest.
  async function autotest(params) {
    const out = $('autotest');
    out.hidden = false;
    const say = (s) => {
      out.textContent = 'autotest: ' + s;
    };
    // Generous deadlines: the tests run it against the real stack on a busy machine.
    const waitFor = async (what, fn, ms = 60000) => {
      const end = Date.now() + ms;
      for (;;) {
        const v = fn();
        if (v) return v;
        if (Date.now() > end) {
          // What the shopper was last told (an error answer shows in the banner) says why.
          const told = $('banner').hidden ? '' : ' (banner: ' + $('banner-text').textContent + ')';
          throw new Error('timed out waiting for ' + what + told);
        }
        await sleep(50);
      }
    };
    try {
      if (params.get('autotest') === 'pow') {
        const cases = JSON.parse(params.get('cases') || '[]');
        const results = [];
        for (const c of cases) {
          const r = await solvePow(c.prefix, c.difficulty, { impl: c.impl });
          results.push({ prefix: c.prefix, difficulty: c.difficulty, impl: r.impl, nonce: r.nonce, tries: r.tries });
        }
        out.dataset.result = JSON.stringify(results);
        say('done pow ' + results.length);
        return;
      }
      const user = params.get('user') || 'autotest';
      say('products');
      const grid = $('grid');
      await waitFor('products', () => grid.children.length > 0);
      const before = grid.children.length;
      if (!$('load-more').hidden) {
        $('load-more').click();
        await waitFor('more products', () => grid.children.length > before);
      }
      say('detail');
      grid.querySelector('button.name').click();
      await waitFor('detail', () => $('detail').open && $('detail-desc').textContent);
      $('detail-close').click();
      await waitFor('detail closed', () => !$('detail').open);

      say('login');
      $('login-user').value = user;
      $('login-form').requestSubmit();
      await waitFor('login', () => !$('who').hidden);

      say('cart');
      grid.querySelector('button.add:not(:disabled)').click();
      await waitFor('cart', () => Number($('cart-count').textContent) > 0);
      $('checkout').click();
      await waitFor('checkout', () => $('checkout-result').querySelector('[data-order-id]'));

      say('flash sale');
      const only = params.get('sale') ? `[data-sale-id="${CSS.escape(params.get('sale'))}"]` : '';
      const buyBtn = await waitFor('a live sale', () => document.querySelector(`.sale.live${only} .btn-buy:not(:disabled):not([hidden])`));
      const saleLi = buyBtn.closest('.sale');
      buyBtn.click();
      if (params.get('stop') === 'queue') {
        const q = await waitFor('the queue view', () => {
          const e = saleLi.querySelector('.queue[data-state="waiting"]');
          return e && e.dataset.position ? e : null;
        });
        say('queued position=' + q.dataset.position);
        return;
      }
      const payBtn = await waitFor('a win', () => saleLi.querySelector('.btn-pay:not(:disabled)') || (saleLi.querySelector('.status.error') && saleLi.querySelector('.status.error').textContent), 120000);
      if (typeof payBtn === 'string') throw new Error('buy failed: ' + payBtn);
      if (params.get('stop') === 'won') {
        window.scrollTo(0, 0);
        say('won');
        return;
      }
      say('pay');
      payBtn.click();
      const order = await waitFor('the order', () => saleLi.querySelector('.won [data-order-id]'));
      const oid = order.dataset.orderId;
      await waitFor('the order in the history', () => $('orders').querySelector(`[data-order-id="${CSS.escape(oid)}"]`));
      // Leave the page as a shopper would see it on arrival, for screenshots.
      document.activeElement.blur();
      window.scrollTo(0, 0);
      say('done order=' + oid);
    } catch (err) {
      say('failed: ' + (err && err.message));
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    $('login-form').addEventListener('submit', guard(login));
    $('logout').addEventListener('click', guard(logout));
    $('load-more').addEventListener('click', guard(() => loadProducts(nextCursor, true)));
    $('banner-close').addEventListener('click', hideBanner);
    $('banner-retry').addEventListener('click', guard(() => {
      const retries = [...bannerRetries];
      hideBanner();
      return Promise.all(retries.map((r) => r()));
    }));
    $('checkout').addEventListener('click', guard(checkout));
    const dlg = $('detail');
    $('detail-close').addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', closedDetail);
    dlg.addEventListener('click', (ev) => {
      if (ev.target === dlg) dlg.close(); // a click on the backdrop
    });
    $('detail-form').addEventListener('submit', guard((ev) => {
      ev.preventDefault();
      const n = Math.max(1, Math.min(99, Math.floor(Number($('detail-qty').value) || 1)));
      return addToCart(detailID, n, $('detail-add'));
    }));

    const s = storage();
    const token = s ? s.getItem('flashedge.token') : '';
    setSession(token || '', (s && s.getItem('flashedge.user')) || '');
    setInterval(guard(tick), 1000);

    const params = new URLSearchParams(location.search);
    if (params.get('autotest') === 'pow') return guard(autotest)(params);
    guard(loadProducts)('', false);
    guard(loadSales)();
    if (session.token) {
      guard(loadCart)();
      guard(loadOrders)();
    }
    const m = /^#p\/(.+)$/.exec(location.hash);
    if (m) guard(openDetail)(decodeURIComponent(m[1]), null);
    if (params.get('autotest') === 'buy') guard(autotest)(params);
  }

  window.flashedge = Object.freeze({ solvePow, leadingZeroBits, sha256, formatPrice });
  start();
})();
