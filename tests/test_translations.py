"""Every user-facing string marked for translation has its Korean translation, and the
browser's Accept-Language picks it (SPEC §8: Korean and English)."""

import gettext
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "locale" / "ko" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
SOURCES = (
    "audit",
    "console",
    "deliveries",
    "endpoints",
    "events",
    "portal",
    "webhookhub",
    "manage.py",
)


def entries(po_text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file (no plural or context entries are used here)."""
    found = {}
    for block in po_text.split("\n\n"):
        if block.lstrip().startswith("#~"):
            continue  # obsolete
        match = re.search(r'^msgid ((?:".*"\n?)+)msgstr ((?:".*"\n?)+)', block, re.M)
        if match:
            msgid, msgstr = (
                "".join(re.findall(r'"(.*)"', part)).encode().decode("unicode_escape")
                .encode("latin-1").decode()
                for part in match.groups()
            )  # fmt: skip
            if msgid:
                found[msgid] = msgstr
    return found


def test_every_korean_entry_is_translated_and_compiled():
    catalogue = entries(PO.read_text(encoding="utf-8"))
    assert catalogue and not [m for m, t in catalogue.items() if not t]
    compiled = gettext.GNUTranslations(MO.open("rb"))
    stale = [m for m, t in catalogue.items() if compiled.gettext(m) != t]
    assert not stale, f"locale/ko .mo is older than the .po: compilemessages -l ko ({stale[:3]})"


@pytest.mark.skipif(not shutil.which("xgettext"), reason="gettext is not installed")
def test_no_marked_string_is_missing_from_the_korean_catalogue(tmp_path):
    """makemessages over a copy of the sources finds nothing new to translate."""
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    shutil.copytree(ROOT / "locale", tmp_path / "locale")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "ko", "--no-location"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "webhookhub.test_settings",
        },
    )
    fresh = entries((tmp_path / PO.relative_to(ROOT)).read_text(encoding="utf-8"))
    untranslated = sorted(m for m, t in fresh.items() if not t)
    assert not untranslated, f"translate these in locale/ko (then compilemessages): {untranslated}"


@pytest.mark.django_db
def test_accept_language_picks_korean_in_the_admin_and_the_api(admin_client, client):
    from tests.factories import make_endpoint

    endpoint = make_endpoint()
    url = reverse("admin:endpoints_endpoint_test", args=[endpoint.pk])
    korean = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="ko-KR,ko;q=0.9").content.decode()
    assert "테스트 이벤트 보내기" in korean and 'lang="ko"' in korean
    english = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Send test event" in english and "테스트" not in english
    missing = client.get("/api/v1/nope%0A/", HTTP_ACCEPT_LANGUAGE="ko")
    assert missing.status_code == 404 and missing.json()["detail"] == "그런 API 경로는 없습니다."
