"""Pure bytes <-> values: framing, the strict CBOR codec, the secure channel."""
