// Keeps the page's live connection (htmx's SSE extension on #live) honest, and the page right.
//
// - The indicator says "Live" only while events can arrive: the server sends a "beat" event every
//   heartbeat; two missed and the stream is dropped and reopened (htmx resumes it with
//   Last-Event-ID, and the server replays what was missed, pushes included).
// - A live element whose re-fetch failed (offline, server away) asks again, with backoff, and at
//   once when the browser is back online: a failed re-fetch never leaves it stale.
// - htmx retries a stream that once connected, but not a FIRST connect that failed (network,
//   429, connect timeout): those are retried here through the "live:retry" trigger of #live.
// - Pushed forms carry no CSRF token (they are the same for every viewer): it is filled in from
//   the page's meta tag on submit.
// - Anonymous visitors' times follow the browser's clock: its zone goes in a cookie, unless one
//   was picked in the time-zone switcher (cookie tz_picked; fittribe/web/zones.py).
// - A profile's free times (#availability) come pushed with every day and session length, shown as
//   the default choice: the page's own day and length (#calendar's data-day/data-length, outside
//   the pushed element) are applied to them before they are swapped in. A booking change comes as
//   the days it touched alone, each keeping how the page showed it.
// Without JS none of this runs, and no indicator shows.
(function () {
  var labels = { live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
  var live = function () { return document.getElementById("live"); };
  var connected = false, everConnected = false, lastSign = 0;
  var retryDelay = 1000, retryTimer = null;
  var failed = new Map(); // live element -> its retry timer

  function show(state) {
    var status = document.getElementById("live-status");
    if (!status) return;
    status.dataset.state = state;
    status.textContent = labels[state];
  }

  function heartbeatMs() {
    var el = live();
    return Number((el && el.dataset.heartbeat) || 15) * 1000;
  }

  function alive() {
    lastSign = Date.now();
    connected = everConnected = true;
    retryDelay = 1000;
    show("live");
  }

  // Two beats missed: the path is dead without a reset (Wi-Fi to mobile data, a stalled proxy).
  setInterval(function () {
    if (!connected || Date.now() - lastSign < 2 * heartbeatMs() + 1000) return;
    connected = false;
    show(navigator.onLine ? "reconnecting" : "offline");
    var connection = live() && live()._htmx && live()._htmx.sse;
    if (connection && connection.reader) connection.reader.cancel(); // htmx reconnects with Last-Event-ID
  }, 1000);

  function retryFirstConnect() {
    if (everConnected || retryTimer) return;
    show(navigator.onLine ? "reconnecting" : "offline");
    retryTimer = setTimeout(function () {
      retryTimer = null;
      if (live() && !everConnected) htmx.trigger(live(), "live:retry");
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  }

  function refetchLater(element, delay) {
    clearTimeout(failed.get(element));
    failed.set(element, setTimeout(function () {
      if (element.isConnected) htmx.trigger(element, "live:refetch");
    }, delay));
  }

  function requestFailed(event) {
    var element = event.target;
    if (element && element.id === "live") return retryFirstConnect();
    if (!element || !element.hasAttribute || !element.hasAttribute("data-live")) return;
    var tries = Number(element.dataset.liveTries || 0) + 1;
    element.dataset.liveTries = tries;
    refetchLater(element, Math.min(1000 * Math.pow(2, tries - 1), 30000) * (0.7 + Math.random() * 0.6));
  }

  document.addEventListener("htmx:sse:after:connection", alive);
  document.addEventListener("htmx:sse:before:message", alive);
  document.addEventListener("htmx:sse:error", function () {
    connected = false;
    if (!everConnected) return retryFirstConnect();
    show(navigator.onLine ? "reconnecting" : "offline");
  });
  document.addEventListener("htmx:sse:close", function () { connected = false; show("offline"); });
  document.addEventListener("htmx:error", requestFailed);
  document.addEventListener("htmx:response:error", requestFailed);
  // A swapped-in element is new: whatever failed before is done with.
  document.addEventListener("htmx:after:swap", function () {
    failed.forEach(function (timer, element) {
      if (!element.isConnected) { clearTimeout(timer); failed.delete(element); }
    });
  });
  window.addEventListener("offline", function () { show("offline"); });
  window.addEventListener("online", function () {
    show(connected ? "live" : "reconnecting");
    // A stream waiting out its backoff reconnects now (and replays what it missed).
    var connection = live() && live()._htmx && live()._htmx.sse;
    if (!connected && connection && connection.delayCanceller) connection.delayCanceller();
    failed.forEach(function (timer, element) { refetchLater(element, Math.random() * 1000); });
  });

  // The calendar's choice (templates/partials/calendar.html) on a new #availability: the chosen
  // length's panel and, in it, the chosen day's times are shown, the rest hidden. What was not
  // chosen, or is not in the new times (the day left the strip), stays as the server rendered it.
  function showChoice(times, day, length) {
    var panel = times.querySelector(length ? '.length-times[data-length="' + length + '"]' : ".length-times:not([hidden])");
    if (!panel) return;
    times.querySelectorAll(".length-times").forEach(function (each) { each.hidden = each !== panel; });
    var dayTimes = day && panel.querySelector('.day-times[data-day="' + day + '"]');
    if (!dayTimes) return;
    panel.querySelectorAll(".day-times").forEach(function (each) { each.hidden = each !== dayTimes; });
    panel.querySelectorAll(".day-strip [data-day]").forEach(function (item) {
      if (item.dataset.day === day) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    });
  }

  // A part of it pushed alone (a day a booking change touched: its strip item or its times) takes
  // the place of the one the page shows, as the page showed it: hidden or not, current day or not.
  function keepView(old, fresh) {
    fresh.hidden = old.hidden;
    var was = old.querySelector(".day"), now = fresh.querySelector(".day");
    if (!was || !now) return;
    if (was.hasAttribute("aria-current")) now.setAttribute("aria-current", "true");
    else now.removeAttribute("aria-current");
  }

  document.addEventListener("htmx:before:swap", function (event) {
    (event.detail.tasks || []).forEach(function (task) {
      var target = task.target, fresh = task.fragment && task.fragment.firstElementChild;
      if (target && target.hasAttribute && target.hasAttribute("data-part") && fresh) keepView(target, fresh);
      var calendar = target && target.id === "availability" && target.closest("#calendar");
      var times = calendar && task.fragment && task.fragment.querySelector && task.fragment.querySelector("#availability");
      if (times) showChoice(times, calendar.dataset.day, calendar.dataset.length);
    });
  });

  document.addEventListener("submit", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var fields = event.target.querySelectorAll ? event.target.querySelectorAll('input[name="csrf_token"]') : [];
    fields.forEach(function (field) { if (!field.value && meta) field.value = meta.content; });
  }, true);

  // First visit (or a new zone): the page was rendered on the trainer's clock; its live parts
  // come again on the browser's once the page is up, and the zone line says which it is.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var cookies = "; " + document.cookie;
    if (zone && /^[A-Za-z0-9_+\/-]+$/.test(zone) && cookies.indexOf("; tz_picked=") === -1
        && (cookies + ";").indexOf("; tz=" + zone + ";") === -1) {
      document.cookie = "tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
      // A visitor's zone line only: a member's times are on their account's clock.
      document.querySelectorAll("[data-zone-browser]").forEach(function (line) {
        line.querySelector("[data-zone-label]").textContent = "Times in " + zone.replace(/_/g, " ") + ", your time";
        line.querySelector("[data-zone-action]").textContent = "Change";
      });
      window.addEventListener("load", function () {
        document.querySelectorAll("[data-live][hx-get]").forEach(function (element) {
          htmx.trigger(element, "live:refetch");
        });
      });
    }
  } catch (e) { /* no Intl: times stay on the trainer's clock */ }
})();
