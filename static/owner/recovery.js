// Binding a new passkey in a recovery session: ask the server for the creation
// options (its own challenge, kept server-side), let the browser create the credential, and
// post it back. The server verifies everything; this script only carries bytes.
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

  function creationOptions(options) {
    var publicKey = Object.assign({}, options, { challenge: toBytes(options.challenge) });
    publicKey.user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
    publicKey.excludeCredentials = (options.excludeCredentials || []).map(function (c) {
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
        attestationObject: toB64url(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : [],
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
    var form = document.getElementById("recovery-passkey");
    var status = document.getElementById("recovery-status");
    if (!form || !status) return;
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var button = form.querySelector("button");
    button.disabled = false; // the page ships it disabled: it works only through this script

    function say(text, isError) {
      status.textContent = text;
      status.className = isError ? "error" : "";
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      say(form.dataset.waiting || "…", false);
      post(form.dataset.options, csrf, {})
        .then(function (options) {
          if (!options.challenge) {
            say(options.message || form.dataset.broken, true);
            return null;
          }
          return navigator.credentials.create(creationOptions(options)).then(
            function (credential) {
              return post(form.action, csrf, {
                method: "passkey",
                credential: credentialJson(credential),
              });
            },
            function () {
              say(form.dataset.cancelled, true);
              button.disabled = false;
              return null;
            }
          );
        })
        .then(function (result) {
          if (!result) return;
          if (result.ok) {
            window.location.assign(result.next);
            return;
          }
          say(result.message || form.dataset.broken, true);
          button.disabled = false;
        })
        .catch(function () {
          say(form.dataset.broken, true);
          button.disabled = false;
        });
    });
  });
})();
