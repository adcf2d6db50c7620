// Live capture progress: the server sends each link's status as it changes (Server-Sent
// Events); badges update in place, and a link's page reloads once a new version is saved.
(function () {
  if (!window.EventSource || !document.querySelector("[data-status]")) return;
  var labels = {};
  try { labels = JSON.parse(document.body.dataset.labels || "{}"); } catch (e) {}
  // The links still being captured: the stream starts with their current state.
  var ids = [];
  document.querySelectorAll("[data-status]").forEach(function (el) {
    var holder = el.closest("[data-id]") || el;
    var s = el.dataset.status;
    if (s === "queued" || s === "capturing") ids.push(holder.dataset.id || el.dataset.id);
  });
  var source = new EventSource("/events?ids=" + ids.join(","));
  // Release the connection when the page goes away (browsers allow six per host, and a
  // page kept in the back-forward cache would otherwise hold its stream open).
  window.addEventListener("pagehide", function () { source.close(); });
  source.addEventListener("link", function (ev) {
    var d = JSON.parse(ev.data);
    document.querySelectorAll("[data-status]").forEach(function (el) {
      var holder = el.closest("[data-id]") || el;
      if (String(holder.dataset.id || el.dataset.id) !== String(d.id)) return;
      el.dataset.status = d.status;
      el.className = "status s-" + d.status;
      el.textContent = labels[d.status] || d.status;
      if (d.status === "ok" && el.id === "link-status") window.location.reload();
    });
  });
})();
