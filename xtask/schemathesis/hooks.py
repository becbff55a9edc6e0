"""schemathesis hooks for `cargo xtask schemathesis` (loaded through SCHEMATHESIS_HOOKS).

A push's `Idempotency-Key` must be new for every new body: the same key with another body is
422 `idempotency_key_reused` (PROTOCOL.md section 3). That is a client's duty across requests,
which no schema can state, so a generator that draws short keys ("0", "!") reuses them with
other bodies. Here every key the document allows is made unique by a random suffix, keeping it
valid (1 to 255 visible ASCII characters); a key the document forbids is sent as drawn, so the
server's refusal of it is still tested.

A pull with a valid `wait` (1 to 60 s) is a long-poll that holds the request until a change
commits or the wait ends (PROTOCOL.md section 11): against an idle server every such case would
take its whole wait, and schemathesis gives up on a response after 10 s. A valid `wait` is
dropped from the query (the Rust tests cover long-polls); an invalid one is sent as drawn, so
the server's refusal of it is still tested.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def valid_wait(value):
    """Whether the server could read `value` as a wait of 1 to 60 s (`3.0` reads as 3)."""
    if isinstance(value, bool):
        return False
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return False
    return seconds.is_integer() and 1 <= seconds <= 60


@schemathesis.hook
def before_call(context, case, kwargs):
    """Runs before every request of every phase (map_case does not see the examples phase)."""
    query = case.query
    if query and "wait" in query and valid_wait(query["wait"]):
        del query["wait"]
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
