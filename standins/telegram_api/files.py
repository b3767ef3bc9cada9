"""Files the bot can fetch: getFile and the download route behind ``base_file_url``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from standins.telegram_api.wire import BotApiError

MAX_FILE_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    path: str
    data: bytes


class FileStore:
    def __init__(self) -> None:
        self._file_ids = itertools.count(1)
        self._files: dict[str, _StoredFile] = {}

    def add(self, file_id: str, data: bytes, path: str | None = None) -> dict[str, Any]:
        """Make ``file_id`` known to getFile and downloadable; returns the File object."""
        stored = _StoredFile(
            file_id=file_id,
            file_unique_id=f"u{file_id}"[:32],
            path=path or f"documents/file_{next(self._file_ids)}",
            data=data,
        )
        self._files[file_id] = stored
        return self._file_object(stored)

    def data_at(self, path: str) -> bytes | None:
        """The content served at download ``path``, None when no file has that path."""
        for stored in self._files.values():
            if stored.path == path:
                return stored.data
        return None

    async def get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        """The getFile method."""
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise BotApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_FILE_DOWNLOAD_SIZE:
            raise BotApiError(400, "Bad Request: file is too big")
        return self._file_object(stored)

    @staticmethod
    def _file_object(stored: _StoredFile) -> dict[str, Any]:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.path,
        }
