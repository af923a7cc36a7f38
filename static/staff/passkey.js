// Staff passkeys in the console: sign-in and step-up. No build step, no dependencies but
// static/owner/webauthn.js, loaded first: its byte helpers (`window.VouchsafeWebAuthn`) and its
// `data-webauthn-register` ceremony, which the staff passkeys page uses to add a passkey.
//
// A form with `data-passkey-step-up` and `data-options-url` proves a passkey for one action:
// on submit, GET the options URL (the server makes and keeps the challenge), call
// `navigator.credentials.get()`, put the answer (JSON) into the form's hidden input
// `step_up_assertion` (see hiddenInput), and submit the form with its other fields (through htmx when the form
// has hx-post: the ceremony runs first, in the capture phase). A form with
// `data-passkey-sign-in` does the same into its input `assertion` (the second factor of the
// staff sign-in). Sentences come from the form's data-msg-* attributes (translated there),
// or from the server's refusal of the options (`message` or `detail`). A form that also has an
// authenticator-code input `token` (or `<prefix>-token`), filled in, is sent with the code
// and no ceremony.
(function () {
  "use strict";

  var W = window.VouchsafeWebAuthn;
  var FIELDS = { "data-passkey-step-up": "step_up_assertion", "data-passkey-sign-in": "assertion" };

  function fieldOf(form) {
    for (var attribute in FIELDS) {
      if (form.hasAttribute && form.hasAttribute(attribute)) return FIELDS[attribute];
    }
    return null;
  }

  // The form's input for the answer: marked `data-step-up-assertion` (or `data-assertion`),
  // named `<name>` or, in a Django form with a prefix, `<prefix>-<name>`; else one is added.
  function hiddenInput(form, name) {
    var input = form.querySelector(
      "input[data-" + name.replace(/_/g, "-") + "], input[name=" + name + "], " +
        "input[name$='-" + name + "']"
    );
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    return input;
  }

  function getOptions(url) {
    return fetch(url, {
      method: "GET",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      return response.json().then(
        function (data) { return { ok: response.ok, data: data }; },
        function () { return { ok: false, data: {} }; }
      );
    });
  }

  // Where the ceremony's sentences go: the form's own status element, or one added to it.
  function statusOf(form) {
    if (!form.querySelector("[role=status]")) {
      var status = document.createElement("p");
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
      form.appendChild(status);
    }
  }

  // A form that also takes an authenticator code (`token`) and has one typed in is sent with
  // the code: the server decides whether a code is enough for that action.
  function usesCode(form) {
    var token = form.querySelector("input[name=token], input[name$='-token']");
    return !!(token && token.value.trim());
  }

  function prove(form, field) {
    var button = form.querySelector("button[type=submit]");
    statusOf(form);
    if (!window.PublicKeyCredential || !navigator.credentials) {
      W.say(form, "unsupported");
      return;
    }
    if (button) button.disabled = true;
    W.say(form, "working");
    getOptions(form.getAttribute("data-options-url"))
      .then(function (answer) {
        if (!answer.ok) throw { server: answer.data };
        return navigator.credentials.get(W.requestOptions(answer.data));
      })
      .then(function (credential) {
        hiddenInput(form, field).value = JSON.stringify(W.credentialJSON(credential));
        W.say(form, "done", "");
        if (button) button.disabled = false;
        proven.add(form);
        form.requestSubmit(); // a real submit, so htmx (hx-post) or the browser posts it
      })
      .catch(function (error) {
        if (button) button.disabled = false;
        if (error && error.server) {
          var server = error.server;
          W.say(form, "refused", server.message || server.detail || form.getAttribute("data-msg-failed"));
        } else if (error && error.name === "NotAllowedError") {
          W.say(form, "cancelled");
        } else {
          W.say(form, "failed");
        }
      });
  }

  // Forms whose answer is in place: their next submit goes through, once.
  var proven = new WeakSet();

  // Capture phase: runs before htmx's own listener on the form, which must not post it
  // until the answer is in the form.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var field = fieldOf(form);
      if (!field) return;
      if (proven.has(form)) {
        proven.delete(form);
        return;
      }
      if (usesCode(form)) return;
      event.preventDefault();
      event.stopPropagation();
      prove(form, field);
    },
    true
  );

  // The buttons start disabled: without this script the form could only post nothing.
  var forms = document.querySelectorAll("form[data-passkey-step-up], form[data-passkey-sign-in]");
  for (var i = 0; i < forms.length; i++) {
    var button = forms[i].querySelector("button[type=submit]");
    if (button) button.disabled = false;
  }
})();
