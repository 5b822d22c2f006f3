/* PipePortal: small progressive enhancements. Every page and action works without this file. */
(function () {
  "use strict";

  function errorBox() {
    return document.getElementById("htmx-error");
  }

  function textOf(html) {
    var div = document.createElement("div");
    div.innerHTML = html || "";
    return (div.textContent || "").trim();
  }

  // htmx does not swap 4xx answers: say what went wrong instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    var box = errorBox();
    if (!box) return;
    var xhr = event.detail.xhr;
    box.textContent = textOf(xhr.responseText) || "The portal answered " + xhr.status + ".";
    box.className = "messages msg-box-error";
    box.hidden = false;
  });

  document.addEventListener("htmx:sendError", function () {
    var box = errorBox();
    if (!box) return;
    box.textContent = "The portal cannot be reached right now; this page retries by itself.";
    box.className = "messages msg-box-error";
    box.hidden = false;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var box = errorBox();
    if (box && event.detail.successful) box.hidden = true;
  });

  // Keep relative times ("3 minutes ago") true on pages left open; the exact time stays in the title.
  var format = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en", { numeric: "auto" }) : null;
  var steps = [
    ["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60], ["second", 1]
  ];

  function relative(date) {
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    if (Math.abs(seconds) < 10) return "now";
    for (var i = 0; i < steps.length; i++) {
      if (Math.abs(seconds) >= steps[i][1] || steps[i][0] === "second") {
        return format.format(Math.trunc(seconds / steps[i][1]), steps[i][0]);
      }
    }
    return "";
  }

  function refreshTimes() {
    if (!format) return;
    var nodes = document.querySelectorAll("time[data-rel][datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var date = new Date(nodes[i].getAttribute("datetime"));
      if (!isNaN(date.getTime())) nodes[i].textContent = relative(date);
    }
  }

  window.setInterval(refreshTimes, 30000);

  // Stage logs: new lines are appended by the log's tail poll; the pane follows them unless the person
  // scrolled up to read, and a pane that just appeared (page load, another stage) starts at its end.
  function nearBottom(pane) {
    return pane.scrollHeight - pane.scrollTop - pane.clientHeight < 24;
  }

  function followLogs(root) {
    if (!root || !root.querySelectorAll) return;
    var panes = root.matches && root.matches(".log[data-follow]") ? [root] : root.querySelectorAll(".log[data-follow]");
    for (var i = 0; i < panes.length; i++) panes[i].scrollTop = panes[i].scrollHeight;
  }

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var pane = event.detail.target;
    if (!pane || !pane.matches || !pane.matches(".log[data-follow]")) return;
    if (nearBottom(pane)) {
      window.setTimeout(function () { pane.scrollTop = pane.scrollHeight; }, 0);
    }
  });

  document.addEventListener("htmx:load", function (event) { followLogs(event.detail.elt); });
  followLogs(document);
})();
