// In-app confirmation (S5): type the number the agent reads out, then sign with a passkey.
// The server checks the number (two digits; a wrong one counts, a typing slip does not),
// computes the WebAuthn challenge (bound to the case, a nonce and the number) and verifies the
// assertion; this script only carries bytes between the browser and the server.
(function () {
  "use strict";

  // The byte helpers are webauthn.js's (loaded first by the page).
  var W = window.VouchsafeWebAuthn;

  function post(url, csrf, body) {
    return W.postJSON(url, body, csrf).then(function (answer) {
      return answer.data;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("confirm-form");
    var status = document.getElementById("confirm-status");
    var input = document.getElementById("confirm-number");
    if (!form || !status || !input) return;
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var button = form.querySelector("button[type=submit]");

    function say(text, isError) {
      status.textContent = text;
      status.className = isError ? "error" : "";
    }
    function lock(locked) {
      input.disabled = locked;
      button.disabled = locked;
    }
    function retype() {
      // Back to the field with what was typed selected, so the next digits replace it.
      input.setAttribute("aria-invalid", "true");
      input.focus();
      input.select();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var number = input.value.trim();
      lock(true);
      input.removeAttribute("aria-invalid");
      say(form.dataset.waiting || "…", false);
      post(form.action, csrf, { number: number })
        .then(function (answered) {
          if (!answered.ok) {
            say(answered.message || "", true);
            var over = !!answered.failed || answered.code === "confirmation.link_invalid";
            lock(over);
            if (!over) retype();
            return null;
          }
          return navigator.credentials.get(W.requestOptions(answered.options)).then(
            function (credential) {
              return post(form.dataset.assert, csrf, {
                number: number,
                credential: W.credentialJSON(credential),
              });
            },
            function (error) {
              say(form.dataset.cancelled || String(error && error.name), true);
              lock(false);
              return null;
            }
          );
        })
        .then(function (result) {
          if (!result) return;
          say(result.message || "", !result.ok);
          form.dataset.result = result.ok ? "confirmed" : result.code || "refused";
          // Another try is allowed only after a refusal that did not end the request.
          lock(result.ok || result.code !== "confirmation.assertion_refused");
        })
        .catch(function () {
          say(form.dataset.broken || "", true);
          lock(false);
        });
    });
  });
})();
