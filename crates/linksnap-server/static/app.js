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

// Import with progress: the file goes to /io/import, which answers one JSON line per step
// read ({"read", "total"}) and a last line with the report (or an error).
(function () {
  var form = document.getElementById("import-form");
  if (!form || !window.fetch || !window.TextDecoder) return;
  var bar = document.getElementById("import-progress");
  var out = document.getElementById("import-result");
  var t = form.dataset;
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    var params = new URLSearchParams();
    params.set("format", form.format.value);
    params.set("capture", form.capture.checked ? "1" : "0");
    params.set("folders", form.folders.checked ? "1" : "0");
    bar.hidden = false;
    bar.removeAttribute("value");
    out.className = "";
    out.textContent = t.uploading;
    fetch("/io/import?" + params, {
      method: "POST",
      headers: { "x-csrf-token": document.body.dataset.csrf },
      body: file,
    }).then(function (res) {
      if (!res.ok || !res.body) throw new Error(res.status + " " + res.statusText);
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buffered = "";
      function show(line) {
        if (!line.trim()) return;
        var d = JSON.parse(line);
        if (d.error) {
          out.className = "error";
          out.textContent = d.error;
        } else if (d.done) {
          bar.value = bar.max = 1;
          out.className = "notice";
          out.textContent = t.added + " " + d.added + " · " + t.existing + " " + d.existing +
            " · " + t.skipped + " " + d.skipped_count;
        } else {
          bar.max = d.total || 1;
          bar.value = d.read;
          out.textContent = t.reading + " " + Math.round(100 * d.read / (d.total || 1)) + " %";
        }
      }
      function pump() {
        return reader.read().then(function (r) {
          buffered += decoder.decode(r.value || new Uint8Array(), { stream: !r.done });
          var lines = buffered.split("\n");
          buffered = lines.pop();
          lines.forEach(show);
          if (r.done) { show(buffered); return; }
          return pump();
        });
      }
      return pump();
    }).catch(function (e) {
      out.className = "error";
      out.textContent = String(e);
    });
  });
})();
