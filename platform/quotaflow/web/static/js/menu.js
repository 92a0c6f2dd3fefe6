// Closes an open top-bar menu (<details class="adminmenu">) on Escape, returning the focus to
// it, or on a click or tap outside it, as menus do. Without JavaScript it still opens and
// closes from its own entry, and any link in it leaves the page.
(function () {
  "use strict";
  function openMenus() {
    return document.querySelectorAll("details.adminmenu[open]");
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    openMenus().forEach(function (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary) summary.focus();
    });
  });
  document.addEventListener("click", function (event) {
    openMenus().forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
})();
