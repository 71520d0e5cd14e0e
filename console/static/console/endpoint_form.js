/* The endpoint form's rows and previews. The form works without this file: rows get a
   blank one each time the page is shown, previews open on their own page. With it, rows
   are added and removed in place and the retry schedule is previewed as it is typed,
   computed on the server by the workers' own policy function. Every text shown comes
   from the server-rendered page. */
(function () {
  "use strict";

  function rows(container) {
    var template = container.querySelector("template");
    var body = container.querySelector("tbody");
    var next = parseInt(container.dataset.next || "0", 10);
    container.querySelector(".wh-add").addEventListener("click", function () {
      body.insertAdjacentHTML("beforeend", template.innerHTML.replace(/__i__/g, String(next++)));
      var inputs = body.lastElementChild.querySelectorAll("input");
      if (inputs.length) inputs[0].focus();
    });
    body.addEventListener("click", function (event) {
      var button = event.target.closest(".wh-remove");
      if (!button) return;
      var row = button.closest("tr");
      if (body.querySelectorAll("tr").length > 1) {
        row.remove();
      } else {
        row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      }
    });
  }

  function retry(container) {
    var name = container.dataset.name;
    var select = container.querySelector("select[name='" + name + "__strategy']");
    var preview = container.querySelector(".wh-preview");
    var timer = null;
    var asked = 0;

    function showFields() {
      container.querySelectorAll("[data-strategies]").forEach(function (label) {
        var used = label.dataset.strategies.split(" ").indexOf(select.value) !== -1;
        label.hidden = !used;
      });
    }

    function refresh() {
      var params = new URLSearchParams();
      container.querySelectorAll("[name^='" + name + "__']").forEach(function (input) {
        if (input.type === "checkbox" && !input.checked) return;
        if (input.closest("[hidden]")) return;
        params.append(input.name, input.value);
      });
      var json = container.querySelector("textarea[name='" + name + "']");
      if (json) params.append(name, json.value);
      var mine = ++asked;
      fetch(container.dataset.previewUrl + "?" + params.toString(), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (mine === asked) preview.innerHTML = data.html;
        })
        .catch(function () { /* the preview is a help, the form still saves */ });
    }

    container.addEventListener("input", function () {
      showFields();
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    });
    container.addEventListener("change", function () {
      showFields();
      clearTimeout(timer);
      timer = setTimeout(refresh, 50);
    });
    showFields();
  }

  function advanced(container) {
    var toggle = container.querySelector(".wh-json-toggle");
    if (!toggle) return;
    toggle.addEventListener("change", function () {
      container.classList.toggle("wh-json-mode", toggle.checked);
    });
  }

  function start() {
    document.documentElement.classList.add("wh-js");
    document.querySelectorAll(".wh-structured").forEach(advanced);
    document.querySelectorAll("[data-wh-rows]").forEach(rows);
    document.querySelectorAll("[data-wh-retry]").forEach(retry);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
