// In-app confirmation (S5): pick the number the agent reads out, then sign with a passkey.
// The server computes the WebAuthn challenge (bound to the case, a nonce and the number) and
// verifies the assertion; this script only carries bytes between the browser and the server.
(function () {
  "use strict";

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function requestOptions(options) {
    var publicKey = Object.assign({}, options, { challenge: toBytes(options.challenge) });
    publicKey.allowCredentials = (options.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
    return { publicKey: publicKey };
  }

  function credentialJson(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () {
        return { ok: false, message: "" };
      });
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
          return navigator.credentials.get(requestOptions(picked.options)).then(
            function (credential) {
              return post(form.dataset.assert, csrf, {
                number: number,
                credential: credentialJson(credential),
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
