// newsletter preview: tabs, email frames sized to their content, and live reload.
// Plain JavaScript, no build step. The email frames are sandboxed without
// allow-scripts: nothing here runs inside them, the page only measures them.
"use strict";

const POLL_MS = 1000;          // a saved template shows within ~1 s (the issue asks for 2)
const TAB_KEY = "newsletter-preview-tab";

// ---- tabs --------------------------------------------------------------

function selectTab(tab) {
  const tabs = tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]');
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    const panel = document.getElementById(other.getAttribute("aria-controls"));
    if (panel) panel.hidden = !selected;
  }
  sessionStorage.setItem(TAB_KEY, tab.id);
  fitAll();  // a frame measured while hidden has no height
}

function restoreTab() {
  const tab = document.getElementById(sessionStorage.getItem(TAB_KEY) || "");
  if (tab && tab.getAttribute("role") === "tab") selectTab(tab);
}

document.addEventListener("click", (event) => {
  const tab = event.target.closest('[role="tab"]');
  if (tab) selectTab(tab);
});

document.addEventListener("keydown", (event) => {
  const tab = event.target.closest('[role="tab"]');
  if (!tab || !["ArrowLeft", "ArrowRight"].includes(event.key)) return;
  const tabs = Array.from(tab.parentElement.querySelectorAll('[role="tab"]'));
  const step = event.key === "ArrowRight" ? 1 : -1;
  const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
  selectTab(next);
  next.focus();
});

// ---- email frames ------------------------------------------------------

// Same origin (sandbox allow-same-origin) lets the page read the frame's height
// and add <base target="_blank"> so links open in a new tab, not in the frame.
function fit(frame) {
  let doc = null;
  try { doc = frame.contentDocument; } catch (error) { return; }
  if (!doc || !doc.documentElement || doc.URL === "about:blank" || frame.offsetParent === null) return;
  if (doc.head && !doc.querySelector("base")) {
    const base = doc.createElement("base");
    base.target = "_blank";
    doc.head.prepend(base);
  }
  // The root's own box is as tall as the content, whatever the frame's height: no
  // need to shrink the frame to measure (that would clamp the editor's scroll position).
  const height = Math.ceil(doc.documentElement.getBoundingClientRect().height);
  if (height > 0) frame.style.height = `${height}px`;
}

function fitAll() {
  for (const frame of document.querySelectorAll("iframe")) fit(frame);
}

// `load` does not bubble, but it can be caught on the way down.
document.addEventListener("load", (event) => {
  if (event.target instanceof HTMLIFrameElement) fit(event.target);
}, true);

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(fitAll, 150);
});

// ---- live reload -------------------------------------------------------

function setStatus(text, state) {
  const live = document.getElementById("live");
  if (!live) return;
  live.textContent = text;
  live.classList.toggle("offline", state === "offline");
  live.classList.toggle("flash", state === "flash");
}

// The ids of the regions and frames: if they match, update in place (tabs,
// scroll and frame heights stay put); if not (an error appeared, or went), swap the page.
function shape(root) {
  return Array.from(root.querySelectorAll("[data-live], iframe"), (el) => el.id).join(" ");
}

function apply(doc) {
  const page = document.getElementById("page");
  const fresh = doc.getElementById("page");
  if (!page || !fresh) return;
  document.title = doc.title;
  document.body.dataset.version = doc.body.dataset.version || "";
  if (shape(page) !== shape(fresh)) {
    page.replaceWith(document.adoptNode(fresh));
    restoreTab();
    return;
  }
  for (const region of fresh.querySelectorAll("[data-live]")) {
    const old = document.getElementById(region.id);
    // Never pull a field out from under the editor's cursor.
    if (old && !old.contains(document.activeElement)) old.innerHTML = region.innerHTML;
  }
  for (const frame of fresh.querySelectorAll("iframe")) {
    const old = document.getElementById(frame.id);
    if (old) old.src = frame.getAttribute("src");  // setting src reloads even when unchanged
  }
}

async function refresh() {
  // Any status: an error page is what the editor needs to see.
  const response = await fetch(location.href, { cache: "no-store" });
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  apply(doc);
  const now = new Date().toLocaleTimeString();
  setStatus(`Updated ${now}`, "flash");
  setTimeout(() => setStatus("Live", ""), 2500);
}

let polling = false;

async function poll() {
  const version = document.body.dataset.version;
  if (polling || !version || document.hidden) return;
  polling = true;
  try {
    const response = await fetch(`/changes?since=${encodeURIComponent(version)}`, { cache: "no-store" });
    const data = await response.json();
    if (document.getElementById("live").classList.contains("offline")) setStatus("Live", "");
    if (data.version !== document.body.dataset.version) await refresh();
  } catch (error) {
    setStatus("Reconnecting…", "offline");  // the server stopped or restarted: keep trying
  } finally {
    polling = false;
  }
}

document.addEventListener("visibilitychange", poll);
document.addEventListener("DOMContentLoaded", () => {
  restoreTab();
  fitAll();  // frames that loaded before this script ran
  setInterval(poll, POLL_MS);
});
window.addEventListener("load", fitAll);
