// The index-status modal: show the spinner each time it opens, so a previous
// object's content never flashes before the new one arrives.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    const modal = document.getElementById("weaviate-modal");
    if (!modal) { return; }
    const body = document.getElementById("weaviate-modal-body");
    const spinner = body.innerHTML;
    modal.addEventListener("hide.bs.modal", function () { body.innerHTML = spinner; });
  });
})();
