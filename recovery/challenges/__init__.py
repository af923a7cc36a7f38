"""Verification challenges: S2 one-time codes to a pre-registered channel, and S3 attestations.

`services.py` sends and checks them, `tokens.py` makes and hashes their secrets, `views.py` is
the owner's and the manager's confirmation pages. The model is re-exported by `recovery.models`.
"""
