"""The verbs of the `gossipnode` command; each module registers its verbs with `cli.verb`.
Part of the composition root: these modules may import runtime/."""
