"""Which of a finished job's outputs go into the chat, and how: files, photos, a clip as a
video, and pictures that share an album name as one album."""

from __future__ import annotations

from pathlib import Path

from workers.events import Album, FileReady
from workers.kinds.base import Output
from workers.outputs import files_for_chat, package_outputs


def test_an_album_goes_as_one_event_where_its_first_picture_was_and_a_clip_as_a_video(
    tmp_path: Path,
) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    for name in ("model.pt", "big.bin", "ckpt.pt", "preview.mp4", "loss.png", "other.png"):
        (out / name).write_bytes(b"x" * (100 if name == "big.bin" else 10))
    frames = []
    for i in range(12):
        (out / f"frame_{i}.png").write_bytes(b"p")
        frames.append(
            Output(out / f"frame_{i}.png", "suggestion", f"frame {i}", True, album="label next")
        )
    outputs = [
        Output(out / "model.pt", "model", "model"),
        frames[0],
        Output(out / "big.bin", "predictions", "big"),
        Output(out / "ckpt.pt", "checkpoint", "ckpt"),
        Output(out / "preview.mp4", "preview", "the clip", send_as_video=True),
        *frames[1:],
        Output(out / "loss.png", "plot", "loss", send_as_photo=True),
        Output(out / "other.png", "plot", "kept", send_as_photo=True, send=False),
    ]
    packed = package_outputs(tmp_path, outputs)

    chosen = files_for_chat(packed, under_bytes=50)

    assert chosen == [
        FileReady(str(out / "model.pt"), "model"),
        Album(
            [str(out / f"frame_{i}.png") for i in range(12)],
            [f"frame {i}" for i in range(12)],
            "label next",
        ),
        FileReady(str(out / "preview.mp4"), "the clip", photo=False, video=True),
        FileReady(str(out / "loss.png"), "loss", photo=True),
    ]
