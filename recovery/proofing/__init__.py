"""S4 verifiers: proofing providers (signed verdicts) and attended sessions (R-05 to R-09)."""
