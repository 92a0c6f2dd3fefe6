// Kanban drag and drop. Dropping a card on a column submits the card's own move form with that
// column's stage: the same POST as its Move button, so the server decides everything (which
// moves are allowed, which fields to ask for, which moves wait for approval). The columns a
// card may go to are the options the server put in its form; any other column refuses it.
// Without JavaScript, or on a touch screen, the form's select and button do the same.
(function () {
  "use strict";
  var dragged = null;

  function columns() {
    return Array.prototype.slice.call(document.querySelectorAll(".board .column[data-stage]"));
  }

  function allowedStages(card) {
    var select = card.querySelector("form.move select[name=to]");
    if (!select) return [];
    return Array.prototype.map.call(select.options, function (option) { return option.value; });
  }

  function dropColumn(event) {
    var column = event.target.closest ? event.target.closest(".column.drop-ok") : null;
    return dragged && column ? column : null;
  }

  function clear() {
    columns().forEach(function (column) { column.classList.remove("drop-ok", "drop-over"); });
  }

  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest ? event.target.closest("article.deal[draggable=true]") : null;
    if (!card) return;
    dragged = card;
    var allowed = allowedStages(card);
    columns().forEach(function (column) {
      if (allowed.indexOf(column.dataset.stage) >= 0) column.classList.add("drop-ok");
    });
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.record);
  });

  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    clear();
  });

  document.addEventListener("dragover", function (event) {
    var column = dropColumn(event);
    if (!column) return;
    event.preventDefault(); // this column takes the card
    event.dataTransfer.dropEffect = "move";
    columns().forEach(function (other) { other.classList.toggle("drop-over", other === column); });
  });

  document.addEventListener("drop", function (event) {
    var column = dropColumn(event);
    if (!column) return;
    event.preventDefault();
    var form = dragged.querySelector("form.move");
    form.querySelector("select[name=to]").value = column.dataset.stage;
    dragged.classList.remove("dragging");
    dragged = null;
    clear();
    form.requestSubmit();
  });
})();
