"""schemathesis hooks for `cargo xtask schemathesis` (loaded through SCHEMATHESIS_HOOKS).

A push's `Idempotency-Key` must be new for every new body: the same key with another body is
422 `idempotency_key_reused` (PROTOCOL.md section 3). That is a client's duty across requests,
which no schema can state, so a generator that draws short keys ("0", "!") reuses them with
other bodies. Here every key the document allows is made unique by a random suffix, keeping it
valid (1 to 255 visible ASCII characters); a key the document forbids is sent as drawn, so the
server's refusal of it is still tested.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    """Runs before every request of every phase (map_case does not see the examples phase)."""
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        key = headers[name]
        if isinstance(key, str) and VALID_KEY.match(key):
            suffix = "-" + uuid.uuid4().hex
            headers[name] = key[: 255 - len(suffix)] + suffix
