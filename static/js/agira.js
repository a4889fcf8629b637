// Agira's small page behaviours. Pages work without this file; it adds
// remembered tabs and Bootstrap tooltips.
(function () {
  "use strict";

  const STORAGE_PREFIX = "agira:tab:";

  // A tab group (<ul data-tab-group="item">) remembers its active tab in
  // localStorage under its group name, so every item opens on the tab last
  // used. A tab named by the URL hash, or by the server (data-active-tab,
  // e.g. after a form error), wins over the stored one.
  function restoreTabs(root) {
    root.querySelectorAll("[data-tab-group]").forEach(function (group) {
      const key = STORAGE_PREFIX + group.dataset.tabGroup;
      const find = function (name) {
        return name ? group.querySelector('[data-bs-toggle="tab"][data-tab="' + name + '"]') : null;
      };
      let stored = null;
      try { stored = window.localStorage.getItem(key); } catch (e) { /* storage disabled */ }
      const fromHash = window.location.hash.replace("#", "");
      const chosen = find(group.dataset.activeTab) || find(fromHash) || find(stored);
      if (chosen) {
        window.bootstrap.Tab.getOrCreateInstance(chosen).show();
      }
      group.querySelectorAll('[data-bs-toggle="tab"]').forEach(function (tab) {
        tab.addEventListener("shown.bs.tab", function () {
          try { window.localStorage.setItem(key, tab.dataset.tab); } catch (e) { /* ignore */ }
          history.replaceState(null, "", "#" + tab.dataset.tab);
        });
      });
    });
  }

  function enableTooltips(root) {
    root.querySelectorAll('[data-bs-toggle="tooltip"]').forEach(function (el) {
      window.bootstrap.Tooltip.getOrCreateInstance(el);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    restoreTabs(document);
    enableTooltips(document);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    enableTooltips(event.detail.target);
  });
})();
