"""Storage back ends: where the policy document, its history and the records beside it live.

``base`` is the protocol every back end implements; ``registry`` finds a back
end by URL scheme from the declarations in ``builtin`` and those of installed
packages (entry-point group ``policystore.backends``).
"""
