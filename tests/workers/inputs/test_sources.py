"""workers.inputs.sources: Drive links and ids recognised in what users type."""

from __future__ import annotations

import pytest

from workers.inputs.sources import parse_drive_ref

FILE_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"https://drive.google.com/file/d/{FILE_ID}/view?usp=sharing", FILE_ID),
        (f"https://drive.google.com/file/d/{FILE_ID}/view", FILE_ID),
        (f"https://drive.google.com/file/d/{FILE_ID}", FILE_ID),
        (f"https://drive.google.com/file/u/1/d/{FILE_ID}/view", FILE_ID),
        (f"https://drive.google.com/open?id={FILE_ID}", FILE_ID),
        (f"https://drive.google.com/uc?id={FILE_ID}&export=download", FILE_ID),
        (f"https://drive.google.com/uc?export=download&id={FILE_ID}", FILE_ID),
        (f"https://drive.usercontent.google.com/download?id={FILE_ID}&export=download", FILE_ID),
        (f"https://drive.google.com/drive/folders/{FILE_ID}?usp=sharing", FILE_ID),
        (f"https://drive.google.com/drive/u/0/folders/{FILE_ID}", FILE_ID),
        (f"https://drive.google.com/drive/mobile/folders/{FILE_ID}", FILE_ID),
        (f"https://docs.google.com/document/d/{FILE_ID}/edit?usp=sharing", FILE_ID),
        (f"https://docs.google.com/spreadsheets/d/{FILE_ID}/edit#gid=0", FILE_ID),
        (f"https://docs.google.com/presentation/d/{FILE_ID}/", FILE_ID),
        (f"drive.google.com/file/d/{FILE_ID}/view", FILE_ID),
        (f"  <https://drive.google.com/open?id={FILE_ID}>  ", FILE_ID),
        (FILE_ID, FILE_ID),
        ("0AHtsq3Bt8kHfUk9PVA", "0AHtsq3Bt8kHfUk9PVA"),
        ("", None),
        ("hello", None),
        ("data/videos/session1.mp4", None),
        ("https://example.com/file/d/" + FILE_ID + "/view", None),
        (f"https://example.com/open?id={FILE_ID}", None),
        ("https://drive.google.com/drive/my-drive", None),
        ("https://drive.google.com/open?id=short", None),
        (f"ftp://drive.google.com/file/d/{FILE_ID}", None),
        ("https://drive.google.com:99999/x", None),
    ],
)
def test_parse_drive_ref(text: str, expected: str | None) -> None:
    assert parse_drive_ref(text) == expected
