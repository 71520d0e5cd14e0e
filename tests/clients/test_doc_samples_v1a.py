"""The v1a (ed25519) checks in docs/receiving-webhooks.md, run as written — the Python one
in this process, the Node one by `node` — against headers webhookhub signs: authentic
webhooks pass; a changed body, id or timestamp, a stale timestamp, another key or a
`v1` signature alone do not."""

import base64
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from deliveries.signing import generate_key_pair, generate_secret, webhook_headers
from tests.e2e.conftest import ROOT

GUIDE = (ROOT / "docs" / "receiving-webhooks.md").read_text()
SECTION = GUIDE[GUIDE.index("## Verify an ed25519 signature (v1a)") :]
BODY = '{"id":"evt_1","type":"order.paid","data":{"name":"Zoë ✓"}}'.encode()


def sample(language: str, marker: str) -> str:
    (code,) = [
        block for block in re.findall(rf"```{language}\n(.*?)```", SECTION, re.S) if marker in block
    ]
    return code


def cases():
    """(headers, body, expected) for one key pair; and its public key."""
    secret, (secret_key, public_key) = generate_secret(), generate_key_pair()
    now = int(time.time())

    def signed(msg_id="evt_1", ts=now, body=BODY, secrets=(), keys=(secret_key,)):
        return webhook_headers(
            msg_id=msg_id, timestamp=ts, body=body, secrets=list(secrets), secret_keys=list(keys)
        )

    tampered_id = {**signed(), "webhook-id": "evt_2"}
    tampered_ts = {**signed(), "webhook-timestamp": str(now + 1)}
    return public_key, [
        (signed(), BODY, True),
        (signed(secrets=[secret]), BODY, True),  # `both`: v1 then v1a
        (signed(keys=[generate_key_pair()[0], secret_key]), BODY, True),  # during a rotation
        (signed(), BODY.replace(b"order.paid", b"order.refunded"), False),
        (tampered_id, BODY, False),
        (tampered_ts, BODY, False),
        (signed(ts=now - 301), BODY, False),
        (signed(keys=[generate_key_pair()[0]]), BODY, False),
        (signed(secrets=[secret], keys=[]), BODY, False),
        ({**signed(), "webhook-signature": "v1a,not-base64!"}, BODY, False),
    ]


def test_the_python_sample_accepts_only_authentic_webhooks(monkeypatch):
    public_key, rows = cases()
    monkeypatch.setenv("WEBHOOK_PUBLIC_KEY", public_key)
    namespace: dict = {}
    exec(compile(sample("python", "def verify_v1a"), "receiving-webhooks.md", "exec"), namespace)
    assert [namespace["verify_v1a"](body, headers) for headers, body, _ in rows] == [
        expected for _, _, expected in rows
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_node_sample_accepts_only_authentic_webhooks(tmp_path):
    public_key, rows = cases()
    script = tmp_path / "check.mjs"
    script.write_text(
        sample("js", "function verifyV1a")
        + """
import { readFileSync } from "node:fs";
const rows = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify(rows.map(([headers, body]) => verifyV1a(Buffer.from(body, "base64"), headers))));
"""
    )
    payload = json.dumps([[headers, base64.b64encode(body).decode()] for headers, body, _ in rows])
    done = subprocess.run(
        [shutil.which("node"), str(script)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=30,
        env={"WEBHOOK_PUBLIC_KEY": public_key, "PATH": os.environ.get("PATH", "")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [expected for _, _, expected in rows]
