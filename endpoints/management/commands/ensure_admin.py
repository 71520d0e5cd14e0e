"""Create the first admin login if there is none (used by `make run`)."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create a superuser if no user exists yet. Takes WEBHOOKHUB_ADMIN_USERNAME and "
        "WEBHOOKHUB_ADMIN_PASSWORD from the environment, or generates a password and "
        "prints it once."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.exists():
            return
        username = os.environ.get("WEBHOOKHUB_ADMIN_USERNAME") or "admin"
        password = os.environ.get("WEBHOOKHUB_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.SUCCESS(
                "\nAdmin login created (shown once):\n"
                f"  http://127.0.0.1:8000/admin/  user: {username}  password: {password}\n"
            )
        )
