"""Storage back ends: where the policy document and its history live."""
