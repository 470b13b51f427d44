// Shows the state of the page's live connection (htmx's SSE extension on #live): live,
// reconnecting or offline. Without JS nothing is shown.
//
// htmx retries a stream that once connected, with backoff, but not a FIRST connect that failed
// or got no answer (hx-config's connectTimeout aborts that one): those are retried here, with
// backoff, by the "live:retry" trigger that #live listens for.
(function () {
  var labels = { live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
  var connected = false;
  var everConnected = false;
  var retryDelay = 1000;
  var retryTimer = null;

  function show(state) {
    var status = document.getElementById("live-status");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = labels[state];
  }

  function retryFirstConnect() {
    if (everConnected || retryTimer) return;
    show(navigator.onLine ? "reconnecting" : "offline");
    retryTimer = setTimeout(function () {
      retryTimer = null;
      var live = document.getElementById("live");
      if (live && !everConnected) htmx.trigger(live, "live:retry");
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  }

  document.addEventListener("htmx:sse:after:connection", function () {
    connected = everConnected = true;
    show("live");
  });
  document.addEventListener("htmx:sse:error", function () {
    connected = false;
    if (!everConnected) return retryFirstConnect();
    show(navigator.onLine ? "reconnecting" : "offline");
  });
  // The first connect is an ordinary htmx request: a network error, an error status or the
  // connect timeout ends up here.
  document.addEventListener("htmx:error", function (event) {
    if (event.target && event.target.id === "live") retryFirstConnect();
  });
  document.addEventListener("htmx:response:error", function (event) {
    if (event.target && event.target.id === "live") retryFirstConnect();
  });
  document.addEventListener("htmx:sse:close", function () { connected = false; show("offline"); });
  window.addEventListener("offline", function () { show("offline"); });
  // Back online: a stream that outlived the blip is still live (nothing reconnects, so no
  // event would correct the label); one that failed meanwhile is being retried.
  window.addEventListener("online", function () { show(connected ? "live" : "reconnecting"); });
})();
