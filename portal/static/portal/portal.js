/* A little help on top of pages that work without it: copy buttons, the token
   "Generate" button, local times, and the language menu applying itself. Every text
   shown comes from the page (data- attributes), so it is translated with it. */
(function () {
  "use strict";
  document.documentElement.classList.add("pt-js");
  document.body.classList.add("pt-js");

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var input = document.getElementById(copy.dataset.copy);
      input.select();
      var done = function () { copy.textContent = copy.dataset.copied || copy.textContent; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, done);
      else { document.execCommand("copy"); done(); }
    }
  });

  var generate = document.getElementById("generate-token");
  if (generate) {
    generate.addEventListener("click", function () {
      // The server generates the token when the form is saved (shown once then): this
      // only picks that choice, so no token ever passes through the page.
      var radio = document.querySelector("input[name=token_action][value=generate]");
      if (radio) { radio.checked = true; radio.focus(); }
      var input = document.getElementById(generate.dataset.target);
      if (input) input.value = "";
    });
  }

  // Times are rendered in the server's TIME_ZONE; the browser knows the viewer's own.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) return;
    var text = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) +
      " " + pad(when.getHours()) + ":" + pad(when.getMinutes());
    if (el.textContent.trim().length > 16) text += ":" + pad(when.getSeconds());
    el.title = el.textContent.trim() + " (" + el.getAttribute("datetime") + ")";
    el.textContent = text;
  });

  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
