// The Stripe page's buttons: every POST carries the CSRF token the page embeds.
// Bundled with the package (no CDN); Fava loads it as the extension's JS module.

function pageRoot() {
  return document.getElementById("stripe-page");
}

function endpoint(name) {
  // /<ledger-slug>/extension/Stripe/ is the page; its endpoints live beside it.
  const path = window.location.pathname.replace(/\/extension\/Stripe\/.*$/, "/extension/Stripe/");
  return path + name;
}

async function call(name, method, body) {
  const root = pageRoot();
  const headers = { "X-CSRF-Token": root ? root.dataset.csrf || "" : "" };
  const opts = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const response = await fetch(endpoint(name), opts);
  let data;
  try {
    data = await response.json();
  } catch {
    data = { ok: false, error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok && data.ok === undefined) data.ok = false;
  return data;
}

function say(el, text, isError) {
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("stripe-error", Boolean(isError));
}

async function pollSync(status) {
  for (;;) {
    await new Promise((r) => setTimeout(r, 700));
    const data = await call("status", "GET");
    const job = data.job || {};
    if (job.state === "running") {
      say(status, "syncing…");
      continue;
    }
    if (job.state === "error") {
      say(status, job.message, true);
      return;
    }
    say(status, `done: ${job.message || ""}; reloading…`);
    window.location.reload();
    return;
  }
}

function bindRow(row) {
  const hash = row.dataset.hash;
  const id = row.dataset.stripeId;
  const out = row.querySelector(".stripe-suggestions");
  row.querySelector(".stripe-accept")?.addEventListener("click", async () => {
    const data = await call("accept", "POST", { entry_hash: hash });
    if (data.ok) {
      row.remove();
      const count = document.getElementById("stripe-queue-count");
      if (count) count.textContent = `${Math.max(0, parseInt(count.textContent, 10) - 1)} open`;
    } else say(out, data.error, true);
  });
  row.querySelector(".stripe-change")?.addEventListener("click", async () => {
    const account = row.querySelector(".stripe-account-input")?.value || "";
    const data = await call("change_account", "POST", { entry_hash: hash, account });
    if (data.ok) row.remove();
    else say(out, data.error, true);
  });
  row.querySelector(".stripe-suggest")?.addEventListener("click", async () => {
    say(out, "looking at the ledger…");
    const response = await fetch(`${endpoint("suggest")}?stripe_id=${encodeURIComponent(id)}`);
    const data = await response.json();
    if (!data.ok) return say(out, data.error, true);
    out.textContent = "";
    if (!data.proposals.length) {
      say(out, "No rule to suggest yet: categorize a few entries like this one by hand (Change account), then ask again.");
      return;
    }
    for (const p of data.proposals) {
      const box = document.createElement("div");
      const pre = document.createElement("pre");
      pre.textContent = p.yaml;
      const note = document.createElement("div");
      note.textContent = `settles ${p.settles} open entr${p.settles === 1 ? "y" : "ies"}; decides ${p.decides_as_ledger} ledger entries as you did, ${p.conflicts} conflict(s)`;
      box.append(pre, note);
      if (data.rules_file) {
        const add = document.createElement("button");
        add.type = "button";
        add.textContent = `Add to ${data.rules_file.split("/").pop()} and recategorize`;
        add.addEventListener("click", async () => {
          const res = await call("add_rule", "POST", { stripe_id: id, name: p.name });
          if (res.ok) {
            say(note, res.message);
            setTimeout(() => window.location.reload(), 800);
          } else say(note, res.error, true);
        });
        box.append(add);
      }
      out.append(box);
    }
  });
  row.querySelector(".stripe-explain")?.addEventListener("toggle", async (ev) => {
    const details = ev.currentTarget;
    const pre = details.querySelector("pre");
    if (!details.open || pre.dataset.loaded) return;
    const q = `stripe_id=${encodeURIComponent(id)}&month=${encodeURIComponent(row.dataset.month)}`;
    const response = await fetch(`${endpoint("explain")}?${q}`);
    const data = await response.json();
    pre.textContent = data.ok ? data.text : data.error;
    pre.dataset.loaded = "1";
  });
}

function bindPayout(details) {
  // A payout's transactions, loaded once when its row is opened.
  details.addEventListener("toggle", async () => {
    const body = details.querySelector("tbody");
    if (!details.open || details.dataset.loaded) return;
    details.dataset.loaded = "1";
    const q = `id=${encodeURIComponent(details.dataset.payout)}`;
    const response = await fetch(`${endpoint("payout")}?${q}`);
    const data = await response.json();
    if (!data.ok) {
      const row = body.insertRow();
      row.insertCell().textContent = data.error;
      return;
    }
    for (const t of data.transactions) {
      const row = body.insertRow();
      for (const value of [t.date, t.id, t.type, t.amount, t.fee, t.account]) {
        row.insertCell().textContent = value;
      }
    }
  });
}

function init() {
  const root = pageRoot();
  if (!root || root.dataset.bound) return;
  root.dataset.bound = "1";
  for (const details of document.querySelectorAll(".stripe-payout-txns")) bindPayout(details);
  const status = document.getElementById("stripe-job");
  document.getElementById("stripe-sync-now")?.addEventListener("click", async () => {
    say(status, "starting…");
    const data = await call("sync", "POST", {});
    if (!data.ok) return say(status, data.error, true);
    await pollSync(status);
  });
  document.getElementById("stripe-check")?.addEventListener("click", async () => {
    say(status, "checking…");
    const data = await call("check", "POST", {});
    say(status, data.ok ? `✔ ${data.message}` : data.error, !data.ok);
  });
  if (status && status.dataset.state === "running") pollSync(status);
  for (const row of root.querySelectorAll(".stripe-row")) bindRow(row);
}

export default {
  onExtensionPageLoad() {
    init();
  },
};
