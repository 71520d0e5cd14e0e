"""First-run setup: write a local .env with freshly generated keys.

`make run` calls it, and so do the settings when they find no SECRET_KEY at all (a bare
checkout running `manage.py check` or `migrate`): every process of the checkout then
reads the same keys. Runs before Django is configured, so it uses only the standard
library and cryptography. Never overwrites an existing .env.
"""

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent


def write_local_env() -> bool:
    """Create .env with new keys for local use; False if one exists already."""
    env_file = BASE_DIR / ".env"
    if env_file.exists():
        return False
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
    # stderr: commands whose output scripts read (e.g. create_api_token) stay clean.
    print(f"Wrote {env_file} with a new SECRET_KEY and WEBHOOKHUB_ENCRYPTION_KEY.", file=sys.stderr)
    return True


def main() -> int:
    write_local_env()
    return 0


if __name__ == "__main__":
    sys.exit(main())
