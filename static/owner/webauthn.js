// Passkeys in the owner portal: no build step, no dependencies.
//
// The server makes the options (with its own challenge, kept server-side) and verifies the
// answer; this script only carries bytes between it and the browser's WebAuthn API. Every
// sentence shown comes from the page (data-msg-* attributes), so it is translated there.
//
// A form with `data-webauthn-register` and `data-options-url` registers a passkey: POST the
// options URL, `navigator.credentials.create()`, POST the credential as JSON to the form's
// action (with the form's `label` and `method` fields), then follow the `next` URL the server
// answers. Enrolment and binding after a recovery both use it. `window.VouchsafeWebAuthn` exposes
// the helpers for other portal pages.
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

  function descriptors(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
  }

  function creationOptions(options) {
    var publicKey = Object.assign({}, options, { challenge: toBytes(options.challenge) });
    publicKey.user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
    publicKey.excludeCredentials = descriptors(options.excludeCredentials);
    return { publicKey: publicKey };
  }

  function requestOptions(options) {
    var publicKey = Object.assign({}, options, { challenge: toBytes(options.challenge) });
    publicKey.allowCredentials = descriptors(options.allowCredentials);
    return { publicKey: publicKey };
  }

  function credentialJSON(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      response: response,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function csrfToken(root) {
    var input = (root || document).querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function postJSON(url, body, token) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().then(
        function (data) { return { ok: response.ok, status: response.status, data: data }; },
        function () { return { ok: false, status: response.status, data: {} }; }
      );
    });
  }

  function say(form, name, text) {
    var status = form.querySelector("[role=status]");
    if (!status) return;
    status.textContent = text || form.getAttribute("data-msg-" + name) || "";
    status.setAttribute("data-state", name);
  }

  function register(form) {
    var token = csrfToken(form);
    var button = form.querySelector("button[type=submit]");
    var label = form.querySelector("input[name=label]");
    var method = form.querySelector("input[name=method]");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(form, "unsupported");
      return;
    }
    button.disabled = true;
    say(form, "working");
    postJSON(form.getAttribute("data-options-url"), {}, token)
      .then(function (answer) {
        if (!answer.ok) throw { server: answer.data };
        return navigator.credentials.create(creationOptions(answer.data));
      })
      .then(function (credential) {
        var body = { credential: credentialJSON(credential), label: label ? label.value : "" };
        if (method) body.method = method.value;
        return postJSON(form.action, body, token);
      })
      .then(function (answer) {
        if (!answer.ok) throw { server: answer.data };
        say(form, "done", "");
        window.location.assign(answer.data.next);
      })
      .catch(function (error) {
        button.disabled = false;
        if (error && error.server) {
          say(form, "refused", error.server.message || form.getAttribute("data-msg-failed"));
        } else if (error && error.name === "NotAllowedError") {
          say(form, "cancelled");
        } else if (error && error.name === "InvalidStateError") {
          say(form, "exists");
        } else {
          say(form, "failed");
        }
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-webauthn-register")) return;
    event.preventDefault();
    register(form);
  });

  // The buttons start disabled: without this script they could only post a plain form.
  var forms = document.querySelectorAll("form[data-webauthn-register]");
  for (var i = 0; i < forms.length; i++) {
    var button = forms[i].querySelector("button[type=submit]");
    if (button) button.disabled = false;
  }

  window.VouchsafeWebAuthn = {
    toBytes: toBytes,
    toB64url: toB64url,
    creationOptions: creationOptions,
    requestOptions: requestOptions,
    credentialJSON: credentialJSON,
    postJSON: postJSON,
    csrfToken: csrfToken,
    say: say,
  };
})();
