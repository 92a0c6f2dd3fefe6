// A record's page opened right after a save (?saved=1) says "Saved."; the address then drops
// that mark, so a reload or a copied link does not say it again. Without JavaScript the mark
// stays in the address, harmlessly.
(function () {
  "use strict";
  var url = new URL(window.location.href);
  if (url.searchParams.get("saved") !== "1") return;
  url.searchParams.delete("saved");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
})();
