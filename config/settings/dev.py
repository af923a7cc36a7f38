"""Local development: the embedded default (SQLite, filesystem broker) unless env says otherwise."""

from pathlib import Path

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405
# A local receiver (http://127.0.0.1:...) is fine while developing.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=True)  # noqa: F405
# The development identity-proofing provider: its vendor is a page of this site
# (/dev-proofing/<nonce>/) signing verdicts with this key. Never in production.
PROOFING_DEV_SECRET = env("PROOFING_DEV_SECRET", default="dev-only-proofing-key-not-for-production")  # noqa: F405
PROOFING_PROVIDERS = {
    "dev": {"CLASS": "recovery.proofing.providers.DevProofingProvider"},
    **PROOFING_PROVIDERS,  # noqa: F405
}
PROOFING_DEFAULT_PROVIDER = PROOFING_DEFAULT_PROVIDER or "dev"  # noqa: F405

# Development fakes of the cloud identity providers (tests/fakes), which scripts/fake_idps.py
# serves and `make run` starts: per connector kind, the port its fake listens on and connector
# settings that reach it. seed_demo gives acme the Entra ID one. Secrets stay out: the settings
# name the variables run.sh fills for each run (the fakes read the same ones) and the files the
# runner writes under FAKE_IDPS_DIR. Only these settings let the runner start.
FAKE_IDPS_DIR = Path(env("VOUCHSAFE_FAKE_IDPS_DIR", default=str(VAR_DIR / "fake-idps")))  # noqa: F405
_graph_port = env.int("VOUCHSAFE_FAKE_GRAPH_PORT", default=8443)  # noqa: F405
_okta_port = env.int("VOUCHSAFE_FAKE_OKTA_PORT", default=8444)  # noqa: F405
_google_port = env.int("VOUCHSAFE_FAKE_GOOGLE_PORT", default=8445)  # noqa: F405
FAKE_IDPS = {
    "entra": {
        "port": _graph_port,
        "settings": {
            # The fake directory's tenant and its app registration: fixed, so the stored
            # connector configuration stays valid from one run to the next.
            "tenant_id": "5d0c3a8e-7b1f-4e2a-9c6d-acce55ed0001",
            "client_id": "5d0c3a8e-7b1f-4e2a-9c6d-acce55ed0002",
            "client_secret_env": "DEMO_ENTRA_CLIENT_SECRET",
            "authority_host": f"https://127.0.0.1:{_graph_port}",
            "graph_url": f"https://127.0.0.1:{_graph_port}",
            "ca_bundle": str(FAKE_IDPS_DIR / "graph-ca.pem"),
        },
    },
    "okta": {
        "port": _okta_port,
        "settings": {
            "org_url": f"http://127.0.0.1:{_okta_port}",
            "api_token_env": "DEMO_OKTA_API_TOKEN",
        },
    },
    "google_workspace": {
        "port": _google_port,
        "settings": {
            "admin_email": "workspace-admin@acme.example",
            "service_account_key_file": str(FAKE_IDPS_DIR / "google-service-account.json"),
            "token_uri": f"http://127.0.0.1:{_google_port}/token",
            "api_endpoint": f"http://127.0.0.1:{_google_port}",
            "gmail_endpoint": f"http://127.0.0.1:{_google_port}",
        },
    },
}
