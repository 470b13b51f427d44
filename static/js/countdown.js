// Counts a hold down on the page: the server rendered the minutes left as text (which is all a
// page without JS shows); this only makes that text tick. The deadline is the server's
// hold_expires_at, so a wrong local clock shifts nothing but the display's start.
(function () {
  var element = document.querySelector("[data-countdown-to]");
  if (!element) return;
  var deadline = Date.now() + Number(element.dataset.secondsLeft) * 1000;
  function tick() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    var minutes = Math.floor(left / 60), seconds = left % 60;
    element.textContent = left > 0
      ? minutes + ":" + (seconds < 10 ? "0" : "") + seconds + " left"
      : "time is up: reload the page to see if it is still yours";
    if (left > 0) setTimeout(tick, 1000);
  }
  tick();
})();
