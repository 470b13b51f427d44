// Shows the state of the page's live connection (htmx's SSE extension on #live):
// live, reconnecting (htmx retries with backoff) or offline. Without JS nothing is shown.
(function () {
  var labels = { live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
  var connected = false;
  var everConnected = false; // htmx retries a stream that once connected, not a first failure

  function show(state) {
    var status = document.getElementById("live-status");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = labels[state];
  }

  document.addEventListener("htmx:sse:after:connection", function () {
    connected = everConnected = true;
    show("live");
  });
  document.addEventListener("htmx:sse:error", function () {
    connected = false;
    show(navigator.onLine && everConnected ? "reconnecting" : "offline");
  });
  document.addEventListener("htmx:sse:close", function () { connected = false; show("offline"); });
  window.addEventListener("offline", function () { show("offline"); });
  // Back online: a stream that outlived the blip is still live (nothing reconnects, so no
  // event would correct the label); one that failed meanwhile is being retried by htmx.
  window.addEventListener("online", function () { show(connected ? "live" : "reconnecting"); });
})();
