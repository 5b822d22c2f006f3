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
})();
