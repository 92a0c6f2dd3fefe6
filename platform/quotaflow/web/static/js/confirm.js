// Asks before a form marked data-confirm is sent (deleting a record, deactivating a person):
// the message is the server's, already in the reader's language. Without JavaScript the form
// is sent at once, as before: what it does can be undone (restore, reactivate).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form && form.getAttribute ? form.getAttribute("data-confirm") : null;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
