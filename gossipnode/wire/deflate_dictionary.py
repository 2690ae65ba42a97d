"""The preset dictionary of compressed peer messages (wire/compression.py): part of the
protocol, never changed in place (a new dictionary needs a new protocol version).

Why: deflate learns a message's repetitions from the message itself, so the first record of
a small batch (a push of one write, a catch-up of ten keys) pays for every string in full.
Primed with what record batches repeat, a push of one OpenPGP certificate goes from about
1,100 to about 830 bytes. It primes each connection's context (wire/compression.py). The
content: the names of the replicated datasets, the CBOR shape of a record batch (of
protocol versions 2 and 3: still the same strings), and one `consumers` value (its map
keys, and a public certificate made by Sequoia for "Example User <user@example.org>": the signature
subpackets, preferences and notation names every such certificate repeats). Public data,
nothing secret; most common strings last, nearest to what follows.
"""

import base64

__all__ = ["DICTIONARY"]

DICTIONARY = base64.b64decode(
    """
    Y29uc3VtZXJzIHByaXZhdGVfa2V5cyBncm91cHMgbWFpbF9zZXR0aW5ncyBkaXJlY3Rvcnlfc3luYyBvcmdfa2V5
    cyBpZ25pdGlvbl9rZXlzIHRydXN0ZWRfa2V5cyBrZXlzZXJ2ZXJzIHdlYl9tZXNzZW5nZXIgbGVhcm5fbW9kZSB2
    ZXJpZmllZF9kaXJlY3RvcnkgY2x1c3Rlcl9wb2xpY3mDhGljb25zdW1lcnNha0CDGwAAAaMYXFAAAFggAAAAAAAA
    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACEbHByaXZhdGVfa2V5c2FrQIMbAAABoxhcUAAAWCAAAAAAAAAAAAAA
    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAIRmZ3JvdXBzYWtAgxsAAAGjGFxQAABYIAAAAAAAAAAAAAAAAAAAAAAAAAAA
    AAAAAAAAAAAAAAAAqGRjZXJ0WQSpxjMEaw2BHBYJKwYBBAHaRw8BAQdA6myUIdJwsWAph5KGjlotfUvEWWif3ttN
    XTuA/YeyuVbCwAsEHxYKAH0FgmsNgRwDCwkHCRBHQjRtftiFwUcUAAAAAAAeACBzYWx0QG5vdGF0aW9ucy5zZXF1
    b2lhLXBncC5vcmfINlZM/1Kfa5i7caUx+vC+pbyqCfNLRfe2dtfmjJRovAMVCggCmwECHgkWIQR2ndCLtpUAoSOR
    uRpHQjRtftiFwQAAKuYA/R7U8WJdx/BVN8ATfPWG8vOjSypyqOOGYBa9IZhRGuKAAP0TtXZ4eSgiZjG8wsbHNSRU
    CO/6fre0wY+2xGffKl6GDM0fRXhhbXBsZSBVc2VyIDx1c2VyQGV4YW1wbGUub3JnPsLADgQTFgoAgAWCaw2BHAML
    CQcJEEdCNG1+2IXBRxQAAAAAAB4AIHNhbHRAbm90YXRpb25zLnNlcXVvaWEtcGdwLm9yZwtjzx325c7sabaEJOKT
    GcJLrafqOiVooMoebvGBOpeSAxUKCAKZAQKbAQIeCRYhBHad0Iu2lQChI5G5GkdCNG1+2IXBAADVwwEAxr4nJkFg
    sUaNhGZWwhhNy+8E70fVTmtMBL/SfJsLufUBAKRfx4CzFyrrWLGLLguO9wRyrypJrZJVtXuMNPvYbN8FzjMEaw2B
    HBYJKwYBBAHaRw8BAQdAu1kUEzNKHptabTIiJD3cWh/gWxFpu+/AaMknGcgGSE7CwL8EGBYKATEFgmsNgRwJEEdC
    NG1+2IXBRxQAAAAAAB4AIHNhbHRAbm90YXRpb25zLnNlcXVvaWEtcGdwLm9yZ+qomVlDVQ3Qh3qFWSyIEAwfRsof
    qd77OninPVFZ8+uUApsCvqAEGRYKAG8FgmsNgRwJEKZMg/blbw+vRxQAAAAAAB4AIHNhbHRAbm90YXRpb25zLnNl
    cXVvaWEtcGdwLm9yZ1cdvX7b9qlhDB1Gw2h3zdaGO13aWRbh90JXZ0HAdje+FiEEPBmCcvQhRaoYIRwlpkyD9uVv
    D68AABEPAQDxZDb8h0iYYjI/dDQzJyV3b9yrMllSDu2nmpw1bQLr/wEAmPVFps4bXDCYJIGjfaJN9YCE+WTyWY6A
    V5CJu7aKEwoWIQR2ndCLtpUAoSORuRpHQjRtftiFwQAAYK4A/A74FCd+GuRUdgzTtO9GkMqBbhCTKvsWRh7pbx/l
    OlcLAQDnyU2kOT7iqIV47LyUMo0C9bglNwRnjDPqQIQzsuydB844BGsNgRwSCisGAQQBl1UBBQEBB0DkRYoNr+Ri
    ODGlMSCelOf97Aoun5dFGaDbwnmIpzLCKQMBCAfCwAAEGBYKAHIFgmsNgRwJEEdCNG1+2IXBRxQAAAAAAB4AIHNh
    bHRAbm90YXRpb25zLnNlcXVvaWEtcGdwLm9yZyuMBujCk1/j/dCqbLZ1FATto5EZOqkwtSEeon5xqNsFApsMFiEE
    dp3Qi7aVAKEjkbkaR0I0bX7YhcEAAFTQAP9mRj3BMYz/DbQdbkNMBUyTt0XoingfGLZ1XgG6BRW4QgEAsmaGV82i
    vjUoQpQGIY99TFKZdo7kPVF0IJ5ynWh2/A1kdHlwZWhleHRlcm5hbGVlbWFpbHB1c2VyQGV4YW1wbGUub3JnZ3Jl
    dm9rZWT0aHVzZXJfaWRzgXgfRXhhbXBsZSBVc2VyIDx1c2VyQGV4YW1wbGUub3JnPmtmaW5nZXJwcmludHgoNzY5
    ZGQwOGJiNjk1MDBhMTIzOTFiOTFhNDc0MjM0NmQ3ZWQ4ODVjMW5jcmVhdGVkX3VuaXhfcxprDYEcbmV4cGlyZXNf
    dW5peF9z9g==
    """
)
