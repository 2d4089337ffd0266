"""Telegram's text formatting: HTML into plain text plus message entities.

Telegram never stores markup: it parses the text into plain text and a list of entities
(offsets and lengths in UTF-16 code units) and rejects malformed markup with ``can't parse
entities``. Commands, mentions and links in plain text are detected too. colabot only sends
HTML, so that is the one parse mode served here; others are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

Entity = dict[str, Any]


class FormattingError(ValueError):
    """Markup Telegram would refuse; the message is the text after ``can't parse entities:``."""


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Turn text sent with ``parse_mode`` into Telegram's plain text and sorted entities."""
    mode = (parse_mode or "").strip().lower()
    entities: list[Entity]
    if mode == "":
        plain, entities = text, []
    elif mode == "html":
        plain, entities = _HtmlParser(text).result()
    else:
        raise ValueError("unsupported parse_mode")
    return plain, merge_entities(entities, detect_entities(plain))


def merge_entities(explicit: list[Entity], detected: list[Entity]) -> list[Entity]:
    """Add detected entities that do not clash with explicit ones; sort like Telegram."""
    opaque = [e for e in explicit if e["type"] in {"code", "pre", "text_link", "custom_emoji"}]
    merged = list(explicit)
    for entity in detected:
        if not any(_overlaps(entity, other) for other in opaque):
            merged.append(entity)
    return sorted(merged, key=lambda e: (e["offset"], -e["length"]))


_URL_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_COMMAND_RE = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")
_MENTION_RE = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{5,32}(?!\w)")
_URL_TRAILING = ".,;:!?)]}'\""


def detect_entities(text: str) -> list[Entity]:
    """Find the entities Telegram adds by itself: links, bot commands and @mentions."""
    found: list[Entity] = []

    def add(kind: str, start: int, end: int) -> None:
        entity = {
            "type": kind,
            "offset": utf16_len(text[:start]),
            "length": utf16_len(text[start:end]),
        }
        if not any(_overlaps(entity, other) for other in found):
            found.append(entity)

    for match in _URL_RE.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in _URL_TRAILING:
            end -= 1
        if end - match.start() > len("https://"):
            add("url", match.start(), end)
    for match in _COMMAND_RE.finditer(text):
        add("bot_command", match.start(), match.end())
    for match in _MENTION_RE.finditer(text):
        add("mention", match.start(), match.end())
    return sorted(found, key=lambda e: (e["offset"], -e["length"]))


def _overlaps(a: Entity, b: Entity) -> bool:
    return bool(a["offset"] < b["offset"] + b["length"] and b["offset"] < a["offset"] + a["length"])


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


@dataclass
class _Output:
    """Plain text being built, with the UTF-16 position entity offsets need."""

    parts: list[str] = field(default_factory=list)
    position: int = 0
    entities: list[Entity] = field(default_factory=list)

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.position += utf16_len(text)

    def add_entity(self, start: int, kind: str, **extra: Any) -> None:
        self.add_span(start, self.position, kind, **extra)

    def add_span(self, start: int, end: int, kind: str, **extra: Any) -> None:
        if end > start:
            self.entities.append({"type": kind, "offset": start, "length": end - start, **extra})

    def text(self) -> str:
        return "".join(self.parts)


_HTML_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


@dataclass
class _OpenTag:
    name: str
    start: int
    attrs: dict[str, str]
    language: str | None = None


class _HtmlParser(HTMLParser):
    """The Bot API's HTML rules on top of the standard library's tokenizer: few tags, four
    named entities, and every tag closed in order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = text
        self.out = _Output()
        self.stack: list[_OpenTag] = []
        self._lines = [0]
        for index, char in enumerate(text):
            if char == "\n":
                self._lines.append(index + 1)

    def result(self) -> tuple[str, list[Entity]]:
        """Parse the whole text; raise FormattingError as Telegram would."""
        self.feed(self.source)
        if self.rawdata.startswith("<"):
            # What the tokenizer still holds is a tag that never ends.
            self._refuse_tag(len(self.source) - len(self.rawdata), "Unclosed start tag")
        self.close()
        if self.stack:
            raise FormattingError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"'
            )
        return self.out.text(), self.out.entities

    def _where(self) -> int:
        line, column = self.getpos()
        return _byte_offset(self.source, self._lines[line - 1] + column)

    def _refuse_tag(self, index: int, problem: str) -> None:
        rest = self.source[index + 1 :]
        name = re.match(r"/?([A-Za-z0-9-]*)", rest)
        tag = name.group(1).lower() if name else ""
        raise FormattingError(
            f'{problem} "{tag}" at byte offset {_byte_offset(self.source, index)}'
        )

    def handle_data(self, data: str) -> None:
        if "<" in data:
            index = self.source.index("<", self._lines[self.getpos()[0] - 1] + self.getpos()[1])
            raise FormattingError(
                f"Empty tag name at byte offset {_byte_offset(self.source, index)}"
            )
        self.out.emit(data)

    def handle_entityref(self, name: str) -> None:
        self.out.emit(_HTML_NAMED.get(name.lower(), f"&{name};"))

    def handle_charref(self, name: str) -> None:
        code = int(name[1:], 16) if name[:1] in "xX" else int(name)
        valid = 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF
        self.out.emit(chr(code) if valid else f"&#{name};")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        where = self._where()
        if tag not in _HTML_TAGS:
            raise FormattingError(f'Unsupported start tag "{tag}" at byte offset {where}')
        values = {key: value or "" for key, value in attrs}
        if tag == "span" and values.get("class") != "tg-spoiler":
            raise FormattingError('Tag "span" must have class "tg-spoiler"')
        self.stack.append(_OpenTag(name=tag, start=self.out.position, attrs=values))

    def handle_endtag(self, tag: str) -> None:
        where = self._where()
        if not self.stack:
            raise FormattingError(f'Unexpected end tag "{tag}" at byte offset {where}')
        opened = self.stack.pop()
        if opened.name != tag:
            raise FormattingError(
                f'Unmatched end tag at byte offset {where}, expected "</{opened.name}>", '
                f'found "</{tag}>"'
            )
        self._close(opened)

    def handle_comment(self, data: str) -> None:
        raise FormattingError(f'Unsupported start tag "!--" at byte offset {self._where()}')

    def handle_decl(self, decl: str) -> None:
        raise FormattingError(f'Unsupported start tag "!" at byte offset {self._where()}')

    def _close(self, tag: _OpenTag) -> None:
        kind = _HTML_TAGS[tag.name]
        if kind == "text_link":
            url = tag.attrs.get("href", "")
            if url:
                self.out.add_entity(tag.start, "text_link", url=url)
            return
        if kind == "code" and self.stack and self.stack[-1].name == "pre":
            language = tag.attrs.get("class", "")
            if language.startswith("language-"):
                self.stack[-1].language = language.removeprefix("language-")
                return
        if kind == "pre" and tag.language:
            self.out.add_entity(tag.start, "pre", language=tag.language)
            return
        if kind == "blockquote" and "expandable" in tag.attrs:
            kind = "expandable_blockquote"
        if kind == "custom_emoji":
            self.out.add_entity(tag.start, kind, custom_emoji_id=tag.attrs.get("emoji-id", ""))
            return
        self.out.add_entity(tag.start, kind)
