"""The sans-IO core: synchronous and deterministic. Time arrives as `now`, chance as an
injected `random.Random`; nothing here reads a clock, touches a socket or awaits."""
