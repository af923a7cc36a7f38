// In-app confirmation (S5): pick the number the agent reads out, then sign with a passkey.
// The server computes the WebAuthn challenge (bound to the case, a nonce and the number) and
// verifies the assertion; this script only carries bytes between the browser and the server.
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
    var form = document.getElementById("confirm-pick");
    var status = document.getElementById("confirm-status");
    if (!form || !status) return;
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var buttons = form.querySelectorAll("button.choice");

    function say(text, isError) {
      status.textContent = text;
      status.className = isError ? "error" : "";
    }
    function lock(locked) {
      buttons.forEach(function (b) { b.disabled = locked; });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var number = event.submitter ? event.submitter.value : "";
      lock(true);
      say(form.dataset.waiting || "…", false);
      post(form.action, csrf, { number: number })
        .then(function (picked) {
          if (!picked.ok) {
            say(picked.message || "", true);
            lock(!!picked.failed || picked.code === "confirmation.link_invalid");
            return null;
          }
          return navigator.credentials.get(W.requestOptions(picked.options)).then(
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
