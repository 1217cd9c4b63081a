"""Identity sits below the domains that react to it: they subscribe to its hooks (the behaviour:
tests/notifications/test_devices.py, tokens gone when sign-ins end), it imports none of them."""

from __future__ import annotations

import subprocess
import sys

from app.core.config import PROJECT_ROOT

ABOVE_IDENTITY = ("notifications", "oauth", "dossiers", "incidents", "media", "cameras")


def test_identity_imports_none_of_the_domains_above_it() -> None:
    probe = (
        "import sys\n"
        "import app.identity.router, app.identity.tasks, app.identity.duty\n"
        "print(' '.join(sorted({m.split('.')[1] for m in sys.modules if m.startswith('app.')})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(done.stdout.split())
    assert "identity" in loaded
    assert loaded.isdisjoint(ABOVE_IDENTITY)
