"""An exact gradient-bias probe: a policy small enough that every completion can be enumerated, so
J(theta), grad J(theta), exact KLs and the exact expectations of the algorithms' updates can be
computed and compared (docs/gradient-bias.md)."""
