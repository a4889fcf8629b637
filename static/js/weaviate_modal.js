// The index-status modal: show the spinner each time it opens, so a previous
// object's content never flashes before the new one arrives; keep the focus
// inside it while its content is swapped; give the focus back on close.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    const modal = document.getElementById("weaviate-modal");
    if (!modal) { return; }
    const body = document.getElementById("weaviate-modal-body");
    const spinner = body.innerHTML;
    let opener = null;
    let openerSlot = null;

    modal.addEventListener("show.bs.modal", function (event) {
      opener = event.relatedTarget || null;
      openerSlot = opener ? opener.closest(".weaviate-status") : null;
    });
    modal.addEventListener("hide.bs.modal", function () { body.innerHTML = spinner; });

    // Push swaps the form away with the button that had the focus, which then
    // falls to <body>: outside the modal, Escape no longer reaches Bootstrap.
    body.addEventListener("htmx:afterSwap", function () {
      const active = document.activeElement;
      if (!modal.classList.contains("show") || (active && active !== document.body)) { return; }
      const next = body.querySelector("#weaviate-resync, #weaviate-push");
      (next || modal).focus();
    });

    // Push (and an amber button's polling) reload the button that opened the
    // modal, so Bootstrap's own return of focus finds it gone: use its successor.
    modal.addEventListener("hidden.bs.modal", function () {
      let button = opener;
      if (button && !button.isConnected && openerSlot && openerSlot.isConnected) {
        button = openerSlot.querySelector(".weaviate-button");
      }
      if (button && button.isConnected) { button.focus(); }
      opener = openerSlot = null;
    });
  });
})();
