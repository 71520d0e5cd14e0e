"""/metrics: open by default; a bearer token and/or an address allow-list close it."""

import pytest

from webhookhub import metrics

pytestmark = pytest.mark.django_db

TOKEN = "s3cr3t-metrics-token"


def scrape(client, *, token: str | None = None, scheme: str = "Bearer", addr: str = "127.0.0.1"):
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {token}"} if token is not None else {}
    return client.get("/metrics", REMOTE_ADDR=addr, **headers)


def test_metrics_are_open_by_default(client):
    response = scrape(client)
    assert response.status_code == 200
    assert b"webhookhub_" in response.content


def test_a_metrics_token_needs_the_bearer_header(client, settings):
    settings.WEBHOOKHUB_METRICS_TOKEN = TOKEN
    for refused in [scrape(client), scrape(client, token="wrong"), scrape(client, token="")]:
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert refused.content == b"Unauthorized: /metrics needs its bearer token.\n"
        assert b"webhookhub_" not in refused.content
    assert scrape(client, token=TOKEN, scheme="Basic").status_code == 401
    assert scrape(client, token=TOKEN + "x").status_code == 401
    assert scrape(client, token=TOKEN).status_code == 200
    assert scrape(client, token=TOKEN, scheme="bearer").status_code == 200


def test_the_token_is_compared_in_constant_time(client, settings, monkeypatch):
    settings.WEBHOOKHUB_METRICS_TOKEN = TOKEN
    compared = []
    real = metrics.hmac.compare_digest

    def spy(given, expected):
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(metrics.hmac, "compare_digest", spy)
    assert scrape(client, token="wrong").status_code == 401
    assert compared == [(b"wrong", TOKEN.encode())]


@pytest.mark.parametrize(
    ("allowed", "addr", "status"),
    [
        (["10.0.0.0/8"], "127.0.0.1", 403),
        (["10.0.0.0/8"], "10.1.2.3", 200),
        (["10.0.0.0/8", "192.0.2.7"], "192.0.2.7", 200),
        (["192.0.2.7"], "192.0.2.8", 403),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", 200),  # IPv4 peer on a dual-stack socket
        (["2001:db8::/32"], "2001:db8::1", 200),
        (["2001:db8::/32"], "2001:db9::1", 403),
        ([" 127.0.0.1 "], "127.0.0.1", 200),
        (["not-an-address"], "127.0.0.1", 403),  # an invalid entry allows no one
        (["10.0.0.0/8"], "", 403),
    ],
)
def test_the_allow_list_matches_the_client_address(client, settings, allowed, addr, status):
    settings.WEBHOOKHUB_METRICS_ALLOWED_IPS = allowed
    response = scrape(client, addr=addr)
    assert response.status_code == status
    if status == 403:
        assert response.content == b"Forbidden: /metrics does not answer this address.\n"


def test_token_and_allow_list_together_need_both(client, settings):
    settings.WEBHOOKHUB_METRICS_TOKEN = TOKEN
    settings.WEBHOOKHUB_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert scrape(client, token=TOKEN, addr="192.0.2.1").status_code == 403
    assert scrape(client, addr="10.0.0.5").status_code == 401
    assert scrape(client, token=TOKEN, addr="10.0.0.5").status_code == 200


def test_health_probes_stay_open_when_metrics_are_closed(client, settings):
    settings.WEBHOOKHUB_METRICS_TOKEN = TOKEN
    settings.WEBHOOKHUB_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/healthz").status_code == 200
