"""Where evidence files live: `<EVIDENCE_STORAGE_DIR>/<tenant id>/<random name>`.

The directory is outside the web root and never served directly: files are read back only
through `attachment_open`, after a permission check. Names on disk are random
(`secrets.token_hex(16)`), never derived from what the uploader called the file. Files are
created with `O_EXCL` (an existing file is never overwritten) and mode 0600, directories 0700.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from django.conf import settings
from django.core.checks import Error

_STORED_NAME = re.compile(r"[0-9a-f]{32}")
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


class EvidenceStore:
    """Write, read and delete evidence files under one root directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, tenant_id: int, stored_name: str) -> Path:
        if not _STORED_NAME.fullmatch(stored_name):
            raise ValueError(f"Not a stored evidence name: {stored_name!r}")
        return self.root / str(int(tenant_id)) / stored_name

    def write(self, tenant_id: int, content: bytes) -> str:
        """Store `content` under a new random name and return that name."""
        directory = self.root / str(int(tenant_id))
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stored_name = secrets.token_hex(16)
        path = self._path(tenant_id, stored_name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NO_FOLLOW
        fd = os.open(path, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return stored_name

    def read(self, tenant_id: int, stored_name: str) -> bytes:
        """The stored bytes; FileNotFoundError when the file is gone."""
        fd = os.open(self._path(tenant_id, stored_name), os.O_RDONLY | os.O_CLOEXEC | _NO_FOLLOW)
        with os.fdopen(fd, "rb") as file:
            return file.read()

    def delete(self, tenant_id: int, stored_name: str) -> None:
        """Remove a stored file if it exists."""
        self._path(tenant_id, stored_name).unlink(missing_ok=True)


def evidence_store() -> EvidenceStore:
    """The store configured by the `EVIDENCE_STORAGE_DIR` setting."""
    return EvidenceStore(settings.EVIDENCE_STORAGE_DIR)


def check_storage_outside_web_root(app_configs: object = None, **kwargs: object) -> list[Error]:
    """System check: the evidence directory must not be inside a directory the web serves."""
    root = Path(settings.EVIDENCE_STORAGE_DIR).resolve()
    served = [settings.STATIC_ROOT, getattr(settings, "MEDIA_ROOT", ""), *settings.STATICFILES_DIRS]
    for directory in filter(None, served):
        web = Path(directory).resolve()
        if root == web or web in root.parents or root in web.parents:
            return [
                Error(
                    f"EVIDENCE_STORAGE_DIR ({root}) overlaps a served directory ({web}).",
                    hint="Keep evidence files outside STATIC_ROOT, MEDIA_ROOT and static dirs.",
                    id="recovery.E001",
                )
            ]
    return []
