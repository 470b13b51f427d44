// Shows the state of the page's live connection (htmx's SSE extension on #live):
// live, reconnecting (htmx retries with backoff) or offline. Without JS nothing is shown.
(function () {
  var labels = { live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

  function show(state) {
    var status = document.getElementById("live-status");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = labels[state];
  }

  document.addEventListener("htmx:sse:after:connection", function () { show("live"); });
  document.addEventListener("htmx:sse:error", function () { show(navigator.onLine ? "reconnecting" : "offline"); });
  document.addEventListener("htmx:sse:close", function () { show("offline"); });
  window.addEventListener("offline", function () { show("offline"); });
})();
