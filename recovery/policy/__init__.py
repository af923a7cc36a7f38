"""Recovery policy as code: a versioned, validated document per tenant.

`document` parses YAML or JSON keeping line numbers, `schema` checks its shape, `floors` holds
the platform minimums no tenant may lower, `rules` turns a valid document into per-case
requirements and tiers, `services` drafts and activates versions (dual control), `selectors`
reads the active one and `explain` says what a case needs.
"""
