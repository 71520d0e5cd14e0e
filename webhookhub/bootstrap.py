"""First-run setup for `make run`: write a local .env with freshly generated keys.

Runs before Django is configured (settings need SECRET_KEY), so it uses only the
standard library and cryptography. Never overwrites an existing .env.
"""

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> int:
    env_file = BASE_DIR / ".env"
    if env_file.exists():
        return 0
    env_file.write_text(
        "# Written by `make run` for local use. Never commit this file.\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"WEBHOOKHUB_ENCRYPTION_KEY={Fernet.generate_key().decode()}\n"
        "DEBUG=true\n"
        "ALLOWED_HOSTS=127.0.0.1,localhost\n"
        "# The demo endpoints deliver to this machine's own demo receiver.\n"
        "WEBHOOKHUB_ALLOW_PRIVATE_URLS=true\n"
        "LOG_FORMAT=plain\n"
    )
    env_file.chmod(0o600)
    print(f"Wrote {env_file} with a new SECRET_KEY and WEBHOOKHUB_ENCRYPTION_KEY.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
