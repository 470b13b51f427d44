// Toasts and flash messages get a close button (without JS they simply go with the next page).
// The button is empty and drawn by CSS, so the message's own text stays exactly the message.
(function () {
  function addClose(note) {
    if (note.querySelector(".dismiss")) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "dismiss";
    button.setAttribute("aria-label", "Close this message");
    button.addEventListener("click", function () { note.remove(); });
    note.appendChild(button);
  }
  function scan() { document.querySelectorAll(".toast, .flash").forEach(addClose); }
  scan();
  ["notification-toast", "flashes"].forEach(function (id) {
    var box = document.getElementById(id);
    if (box) new MutationObserver(scan).observe(box, { childList: true, subtree: true });
  });
})();
// The profile's day strip scrolls sideways inside its box: keep its chosen day in view, when the
// page loads and whenever the calendar changes (a choice swapped in, a push). Only the strip
// scrolls, never the page. Without JS the strip starts at today and the chosen day is named below it.
(function () {
  function showChosenDays() {
    document.querySelectorAll(".day-strip").forEach(function (strip) {
      var day = strip.querySelector("[aria-current]");
      if (!day || !strip.clientWidth) return; // none chosen, or hidden
      var left = day.offsetLeft, right = left + day.offsetWidth;
      if (left < strip.scrollLeft || right > strip.scrollLeft + strip.clientWidth) {
        strip.scrollLeft = left - (strip.clientWidth - day.offsetWidth) / 2;
      }
    });
  }
  showChosenDays();
  document.addEventListener("htmx:after:swap", showChosenDays);
})();
