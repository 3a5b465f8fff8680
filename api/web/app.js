// bread's web page: a customer's orders, a baker's tickets and an operator's sagas, kept current by the streams of
// their changes.
// Every call goes to the gateway this page came from; the bearer token (when authentication is on) is kept for
// this tab only.

const $ = (selector) => document.querySelector(selector);
const TOKEN_KEY = "bread.token";
const RECONNECT_MS = 1000;

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function authorization() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// One request; bread answers JSON, errors included ({"error": ..., ...}).
async function call(method, path, body) {
  const headers = { Accept: "application/json", ...authorization() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    return { status: 0, ok: false, data: { error: `the gateway cannot be reached: ${error.message}` } };
  }
  let data = null;
  try { data = await response.json(); } catch { data = { error: `${response.status} ${response.statusText}` }; }
  return { status: response.status, ok: response.ok, data, retryAfter: response.headers.get("Retry-After") };
}

function showProblem(what, answer) {
  const box = $("#problem");
  const reason = answer.data?.error ?? "no reason given";
  const retry = answer.retryAfter ? ` Try again in ${answer.retryAfter} s.` : "";
  box.replaceChildren(
    el("strong", { text: `${what}: ${answer.status || "no answer"} — ${reason}.${retry}` }),
    el("pre", { class: "json", text: JSON.stringify(answer.data, null, 2) }),
  );
  box.dataset.status = String(answer.status);
  box.hidden = false;
}

function clearProblem() {
  $("#problem").hidden = true;
}

const money = (amount) => new Intl.NumberFormat().format(amount);
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });

// A server-sent event stream read with fetch (an EventSource cannot send the bearer token). It reconnects after
// every break with the id of the last event it saw, so the server goes on from there: nothing is missed.
class LiveStream {
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    this.lastId = null;
    this.retryMs = RECONNECT_MS;
    this.stopped = false;
  }

  stop() {
    this.stopped = true;
    this.aborter?.abort();
  }

  async run() {
    while (!this.stopped) {
      this.aborter = new AbortController();
      try {
        const headers = { Accept: "text/event-stream", ...authorization() };
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        const response = await fetch(this.path, { headers, signal: this.aborter.signal, cache: "no-store" });
        if (!response.ok) {
          let data = null;
          try { data = await response.json(); } catch { data = { error: response.statusText }; }
          this.handlers.problem({ status: response.status, data, retryAfter: response.headers.get("Retry-After") });
        } else {
          this.handlers.live(true);
          await this.follow(response.body.pipeThrough(new TextDecoderStream()).getReader());
        }
      } catch (error) {
        if (this.stopped) return;
      }
      this.handlers.live(false);
      // The server's `retry:` says how soon to come back; a break is usually a restart or a rebalance.
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  async follow(reader) {
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":");
      if (colon === 0) continue;
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") this.lastId = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (data.length && this.handlers[event]) this.handlers[event](JSON.parse(data.join("\n")));
  }
}

// Rows by key; a row seen again replaces the one shown unless it is older (its story is shorter). The stream and
// a reload may deliver the same change twice, in either order, and a row the stream brings while the list loads
// stays. Of the rows `wanted`, the first `shown` in `order` are kept and drawn (a busy bread streams many), at
// most once per batch of events. When rows have left and the server holds more than the page kept (the list was
// cut, or rows went past `shown`), `refill` loads the list again, so what was let go comes back into view.
class Rows {
  constructor(draw, story, order, shown, wanted = () => true) {
    this.rows = new Map();
    this.draw = draw;
    this.story = story;
    this.order = order;
    this.shown = shown;
    this.wanted = wanted;
    this.drawing = false;
    this.arrived = null; // while a list loads: the rows the stream brought meanwhile
    this.more = false;
    this.most = 0; // the most rows drawn since the list was loaded
    this.refill = () => {};
  }

  loading() {
    this.arrived = new Map();
  }

  replaceAll(rows, more) {
    const arrived = [...(this.arrived ?? new Map()).values()];
    this.arrived = null;
    this.rows = new Map(rows.map((row) => [String(row.orderId), row]));
    this.more = more;
    this.most = 0;
    arrived.forEach((row) => this.upsert(row));
    this.changed();
  }

  notLoaded() {
    this.arrived = null;
  }

  upsert(row) {
    const key = String(row.orderId);
    if (this.arrived && !this.isOlder(row, this.arrived.get(key))) this.arrived.set(key, row);
    if (this.isOlder(row, this.rows.get(key))) return;
    this.rows.set(key, row);
    this.changed();
  }

  isOlder(row, than) {
    return than !== undefined && this.story(than) > this.story(row);
  }

  changed() {
    if (this.drawing) return;
    this.drawing = true;
    queueMicrotask(() => {
      this.drawing = false;
      const wanted = [...this.rows.values()].filter(this.wanted).sort(this.order);
      const kept = wanted.slice(0, this.shown);
      this.more ||= wanted.length > kept.length;
      this.most = Math.max(this.most, kept.length);
      this.rows = new Map(kept.map((row) => [String(row.orderId), row]));
      this.draw(kept);
      if (this.more && kept.length < this.most && !this.arrived) this.refill();
    });
  }
}

const ORDERS_SHOWN = 50;
// Orders and tickets in the order things happened: numbers come in blocks per order edge and do not say it.
// Times are ISO strings in one zone, so they sort as text; one missing sorts first.
const byTime = (a, b) => (a ?? "").localeCompare(b ?? "");
const TICKETS_SHOWN = 200;

// Rows kept current by a stream of their changes: loaded from `list` whenever the stream says to (at first, and
// after a break longer than the server remembers) or the rows ask to be refilled, then changed by each event.
// `rowsIn` reads a list's answer as {rows, more}: `more` when the server holds rows the answer left out.
function followLive(path, list, rowsIn, rows, what) {
  let loading = false;
  let again = false;
  const load = async () => {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    do {
      again = false;
      rows.loading();
      const answer = await call("GET", list);
      if (!answer.ok) {
        rows.notLoaded();
        showProblem(`Loading ${what} failed`, answer);
        break;
      }
      const loaded = rowsIn(answer.data);
      rows.replaceAll(loaded.rows, loaded.more);
    } while (again);
    loading = false;
  };
  rows.refill = load;
  const stream = new LiveStream(path, {
    reload: load,
    row: (row) => rows.upsert(row),
    live: (on) => setLive(path, on),
    problem: (answer) => showProblem(`Live updates of ${what} stopped`, answer),
  });
  stream.run();
  return stream;
}

// The customer's view: the menu, the order form, and every own order with its story.
const customer = {
  orders: new Rows(renderOrders, (row) => row.history?.length ?? 0,
                   (a, b) => byTime(b.placedAt, a.placedAt) || b.orderId - a.orderId, ORDERS_SHOWN),
  stream: null,

  async start() {
    const menu = await call("GET", "/menu");
    if (!menu.ok) return showProblem("The menu could not be loaded", menu);
    $("#menu tbody").replaceChildren(...menu.data.items.map(({ item, price }, index) => el("tr", {},
      el("td", {}, el("input", { type: "radio", name: "item", value: item, id: `item-${item}`,
                                 ...(index === 0 ? { checked: "" } : {}) })),
      el("td", {}, el("label", { for: `item-${item}`, text: item })),
      el("td", { class: "price", text: money(price) }))));
    const ordersIn = (page) => ({ rows: page._embedded.mypages,
                                  more: page.page.totalElements > page._embedded.mypages.length });
    this.stream = followLive("/mypages/stream", `/mypages?size=${ORDERS_SHOWN}`, ordersIn, this.orders, "your orders");
  },

  async place(event) {
    event.preventDefault();
    const item = document.querySelector("input[name=item]:checked")?.value;
    const qty = Number($("#qty").value);
    $("#place").disabled = true;
    const answer = await call("POST", "/orders", { item, qty });
    $("#place").disabled = false;
    if (!answer.ok) return showProblem("The order was not taken", answer);
    clearProblem();
    $("#placed").textContent = answer.status === 202
      ? `Order #${answer.data.id} taken; pay was unavailable, so it is charged when pay answers again.`
      : `Order #${answer.data.id} placed: ${answer.data.qty} × ${answer.data.item}.`;
  },

  async cancel(orderId) {
    const answer = await call("DELETE", `/orders/${orderId}`);
    if (!answer.ok) return showProblem(`Order #${orderId} was not cancelled`, answer);
    clearProblem();
  },
};

// Cards are drawn again only for rows that changed (a row is often written again unchanged): a card kept keeps
// what is typed into it.
function cardsFor(cache, rows, draw, keyOf = (row) => row.orderId) {
  const cards = rows.map((row) => {
    const kept = cache.get(String(keyOf(row)));
    if (kept && JSON.stringify(kept.row) === JSON.stringify(row)) return kept.card;
    const card = draw(row);
    cache.set(String(keyOf(row)), { row, card });
    return card;
  });
  const drawnNow = new Set(rows.map((row) => String(keyOf(row))));
  for (const key of [...cache.keys()]) if (!drawnNow.has(key)) cache.delete(key);
  return cards;
}

// Puts `cards` in `list` in their order, moving only those out of place: a card taken out of the page even for a
// moment loses the keyboard, and a baker typing a reason into it would lose the rest of the words to whatever
// change of another card came in meanwhile.
function showCards(list, cards) {
  const wanted = new Set(cards);
  for (const child of [...list.children]) if (!wanted.has(child)) child.remove();
  cards.forEach((card, index) => {
    const there = list.children[index];
    if (there !== card) list.insertBefore(card, there ?? null);
  });
}

const orderCards = new Map();
function renderOrders(newestFirst) {
  showCards($("#orders"), cardsFor(orderCards, newestFirst, orderCard));
}

function orderCard(row) {
  return el("li", { class: "card", "data-order-id": row.orderId },
    el("div", { class: "head" },
      el("span", { class: "what", text: `#${row.orderId} · ${row.qty ?? "?"} × ${row.item ?? "?"}` }),
      el("span", { class: "price", text: row.price ? money(row.price) : "" }),
      el("span", { class: "status", "data-status": row.status, text: row.status }),
      el("span", { class: "actions" }, row.cancellable
        ? el("button", { type: "button", class: "cancel", text: "Cancel", onclick: () => customer.cancel(row.orderId) })
        : null)),
    row.reason ? el("div", { class: "reason", text: row.reason }) : null,
    el("ol", { class: "history" }, ...(row.history ?? []).map((step) => el("li", { "data-event": step.event },
      el("time", { datetime: step.at, text: clock(step.at) }),
      step.event, step.reason ? ` — ${step.reason}` : "", step.by ? ` (by ${step.by})` : ""))));
}

// The baker's view: the tickets waiting for a decision, oldest first.
const baker = {
  tickets: new Rows(renderTickets, (ticket) => (ticket.status === "Confirming" ? 0 : 1),
                    (a, b) => byTime(a.openedAt, b.openedAt) || a.orderId - b.orderId, TICKETS_SHOWN,
                    (ticket) => ticket.status === "Confirming"),
  stream: null,

  start() {
    const ticketsIn = (waiting) => ({ rows: waiting.tickets, more: waiting.total > waiting.tickets.length });
    this.stream = followLive("/bakeries/stream", `/bakeries?size=${TICKETS_SHOWN}`, ticketsIn, this.tickets,
                             "the tickets");
  },

  async decide(orderId, status) {
    const reason = document.querySelector(`[data-ticket="${orderId}"] input.reason-text`)?.value || undefined;
    const answer = await call("POST", "/bakeries", { orderId, status, ...(reason ? { reason } : {}) });
    if (!answer.ok) return showProblem(`The decision on order #${orderId} was not taken`, answer);
    clearProblem();
    this.tickets.upsert(answer.data);
  },
};

const ticketCards = new Map();
function renderTickets(oldestFirst) {
  $("#no-tickets").hidden = oldestFirst.length > 0;
  showCards($("#tickets"), cardsFor(ticketCards, oldestFirst, ticketCard));
}

// What to bake: the order's placement may reach the bakery after its payment opened the ticket.
function toBake(ticket) {
  return ticket.item ? `${ticket.qty} × ${ticket.item}` : "what to bake is on its way";
}

function ticketCard(ticket) {
  return el("li", { class: "card", "data-ticket": ticket.orderId },
    el("div", { class: "head" },
      el("span", { class: "what", text: toBake(ticket) }),
      el("span", { class: "hint", text: `order #${ticket.orderId}` }),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "confirm", text: "Confirm",
                       onclick: () => baker.decide(ticket.orderId, "Confirmed") }),
        el("input", { class: "reason-text", placeholder: "reason to reject", maxlength: "500" }),
        el("button", { type: "button", class: "reject", text: "Reject",
                       onclick: () => baker.decide(ticket.orderId, "Rejected") }))));
}

// The operator's view: the orders by status, the sagas not ended with their story, and the admin's refund of a
// confirmed order. The listing is loaded again as the orders change (followed on the Mypage stream), at most
// once every SAGAS_EVERY_MS.
const SAGA_STATUSES = ["Ordered", "PaymentPending", "Paid", "Confirming", "Cancelling"];
const SAGAS_EVERY_MS = 1000;
const LETTERS_SHOWN = 50;
const operator = {
  stream: null,
  loading: null,
  again: false,

  start() {
    $("#saga-status").replaceChildren(el("option", { value: "", text: "any" }),
      ...SAGA_STATUSES.map((status) => el("option", { value: status, text: status })));
    this.stream = new LiveStream("/mypages/stream", {
      reload: () => this.load(), row: () => this.load(), live: (on) => setLive("/mypages/stream#operator", on),
      problem: (answer) => showProblem("Live updates of the orders stopped", answer),
    });
    this.stream.run();
  },

  // Loads the listing now, or once the load under way has ended and its pause passed.
  async load() {
    if (this.loading) { this.again = true; return; }
    this.loading = (async () => {
      const status = $("#saga-status").value;
      const query = new URLSearchParams({ size: "50", olderThanS: $("#saga-older").value || "0",
                                          ...(status ? { status } : {}) });
      const answer = await call("GET", `/sagas?${query}`);
      if (!answer.ok) showProblem("The sagas could not be listed", answer);
      else renderSagas(answer.data);
      const letters = await call("GET", `/dead-letters?size=${LETTERS_SHOWN}`);
      if (!letters.ok) showProblem("The dead letters could not be listed", letters);
      else renderLetters(letters.data.letters);
      await new Promise((resolve) => setTimeout(resolve, SAGAS_EVERY_MS));
    })();
    await this.loading;
    this.loading = null;
    if (this.again) { this.again = false; this.load(); }
  },

  async replay(id) {
    const answer = await call("POST", `/dead-letters/${id}/replay`);
    if (!answer.ok) return showProblem(`Dead letter ${id} was not replayed`, answer);
    clearProblem();
    const to = answer.data.replayedTo;
    $("#replayed").textContent = `Dead letter ${id} replayed to ${to.topic}[${to.partition}]@${to.offset}.`;
    this.load();
  },

  async refund(event) {
    event.preventDefault();
    const orderId = Number($("#refund-order").value);
    const answer = await call("POST", "/payments", { orderId, action: "cancel", reason: $("#refund-reason").value });
    if (!answer.ok) return showProblem(`Order #${orderId} was not refunded`, answer);
    clearProblem();
    $("#refunded").textContent = `Order #${orderId} refunded ${money(answer.data.price)}: ${answer.data.reason}.`;
  },
};

const sagaCards = new Map();
function renderSagas(listing) {
  $("#counts tbody").replaceChildren(...Object.entries(listing.counts).map(([status, count]) => el("tr", {},
    el("td", {}, el("span", { class: "status", "data-status": status, text: status })),
    el("td", { class: "price", text: String(count) }))));
  $("#no-sagas").hidden = listing.unfinished.length > 0;
  showCards($("#sagas"), cardsFor(sagaCards, listing.unfinished, sagaCard));
}

const letterCards = new Map();
function renderLetters(newestFirst) {
  $("#no-letters").hidden = newestFirst.length > 0;
  showCards($("#letters"), cardsFor(letterCards, newestFirst, letterCard, (letter) => letter.id));
}

function letterCard(letter) {
  const replays = letter.replays.map((r) => `replayed ${clock(r.at)} to ${r.topic}[${r.partition}]@${r.offset}` +
                                            (r.by ? ` by ${r.by}` : ""));
  return el("li", { class: "card", "data-letter": letter.id },
    el("div", { class: "head" },
      el("span", { class: "what", text: `${letter.consumer} · ${letter.topic}[${letter.partition}]@${letter.offset}` }),
      el("span", { class: "hint", text: clock(letter.at) }),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "replay", text: "Replay", onclick: () => operator.replay(letter.id) }))),
    el("div", { class: "reason", text: letter.error }),
    el("pre", { class: "json", text: letter.value }),
    ...replays.map((text) => el("div", { class: "hint replayed", text })));
}

function sagaCard(saga) {
  const next = saga.next ? `${saga.next.then} ${saga.next.overdue ? "overdue since" : "at"} ${clock(saga.next.at)}` : "";
  return el("li", { class: "card", "data-saga": saga.orderId },
    el("div", { class: "head" },
      el("span", { class: "what", text: `Order #${saga.orderId}` }),
      el("span", { class: "status", "data-status": saga.status, text: saga.status }),
      saga.stalled ? el("span", { class: "stalled", text: "stalled" }) : null,
      el("span", { class: "hint", text: `open ${Math.round(saga.openS)} s${next ? ` · ${next}` : ""}` })),
    el("ol", { class: "history" }, ...saga.story.map((step) => el("li", { "data-event": step.event },
      el("time", { datetime: step.at, text: clock(step.at) }),
      step.event, step.reason ? ` — ${step.reason}` : ""))));
}

const connected = new Map(); // stream -> whether it is connected now
function setLive(stream, on) {
  connected.set(stream, on);
  const all = [...connected.values()].every(Boolean);
  $("#live").dataset.live = all ? "on" : "off";
  $("#live").textContent = all ? "live" : "reconnecting";
}

function show(view) {
  for (const button of document.querySelectorAll("#views button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === view));
  }
  for (const name of ["customer", "baker", "operator"]) $(`#${name}`).hidden = name !== view;
}

// Which views the caller has: a customer theirs, a baker theirs, an admin or a service (or anyone without
// authentication) every one.
function viewsOf(me) {
  if (me.authentication === "off" || me.role === "admin" || me.role === "service") {
    return ["customer", "baker", "operator"];
  }
  return me.role === "baker" ? ["baker"] : ["customer"];
}

async function begin() {
  for (const stream of [customer.stream, baker.stream, operator.stream]) stream?.stop();
  customer.stream = baker.stream = operator.stream = null;
  connected.clear();
  const me = await call("GET", "/me");
  if (!me.ok) {
    $("#who").textContent = me.status === 401 ? "enter your token" : "";
    for (const button of document.querySelectorAll("#views button")) button.hidden = true;
    show(null);
    return showProblem("Signing in failed", me);
  }
  clearProblem();
  $("#who").textContent = me.data.authentication === "off"
    ? "authentication off" : `${me.data.principal} (${me.data.role})`;
  const views = viewsOf(me.data);
  for (const button of document.querySelectorAll("#views button")) button.hidden = !views.includes(button.dataset.view);
  show(views[0]);
  if (views.includes("customer")) await customer.start();
  if (views.includes("baker")) baker.start();
  if (views.includes("operator")) operator.start();
}

$("#token").value = sessionStorage.getItem(TOKEN_KEY) ?? "";
$("#sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
  begin();
});
$("#order-form").addEventListener("submit", (event) => customer.place(event));
$("#saga-filter").addEventListener("submit", (event) => { event.preventDefault(); operator.load(); });
$("#refund-form").addEventListener("submit", (event) => operator.refund(event));
for (const button of document.querySelectorAll("#views button")) {
  button.addEventListener("click", () => show(button.dataset.view));
}
begin();
