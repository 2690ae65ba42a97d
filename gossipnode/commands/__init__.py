"""CLI verbs beyond the setup verbs of cli.py; each module registers its verbs with
`cli.verb`. Part of the composition root: these modules may import runtime/."""
