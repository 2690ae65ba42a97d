"""The Trio shell: the only code that awaits. It moves bytes and time for the sans-IO core."""
