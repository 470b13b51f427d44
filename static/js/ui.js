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
