"""Telegram's text formatting: parse modes into plain text plus message entities.

Telegram never stores markup: it parses ``HTML``, ``MarkdownV2`` and ``Markdown`` into plain text
and a list of entities (offsets and lengths in UTF-16 code units) and rejects malformed markup
with ``can't parse entities``. Commands, mentions and links in plain text are detected too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Entity = dict[str, Any]


class FormattingError(ValueError):
    """Markup Telegram would refuse; the message is the text after ``can't parse entities:``."""


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def utf16_slice(text: str, offset: int, length: int) -> str:
    """Return the part of ``text`` an entity covers."""
    raw = text.encode("utf-16-le")
    return raw[2 * offset : 2 * (offset + length)].decode("utf-16-le", errors="replace")


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Turn text sent with ``parse_mode`` into Telegram's plain text and sorted entities."""
    mode = (parse_mode or "").strip().lower()
    entities: list[Entity]
    if mode == "":
        plain, entities = text, []
    elif mode == "html":
        plain, entities = _HtmlParser(text).parse()
    elif mode == "markdownv2":
        plain, entities = _MarkdownV2Parser(text).parse()
    elif mode == "markdown":
        plain, entities = _parse_markdown_legacy(text)
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
_HTML_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]{2,8}));")
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_RE = re.compile(r"\s*([a-zA-Z0-9_-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


@dataclass
class _OpenTag:
    name: str
    start: int
    attrs: dict[str, str]
    language: str | None = None


class _HtmlParser:
    """A parser following the Bot API's HTML rules: few tags, four named entities."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Output()
        self.stack: list[_OpenTag] = []

    def parse(self) -> tuple[str, list[Entity]]:
        text, i = self.text, 0
        while i < len(text):
            char = text[i]
            if char == "&":
                i = self._entity(i)
            elif char == "<":
                i = self._end_tag(i) if text.startswith("</", i) else self._start_tag(i)
            else:
                self.out.emit(char)
                i += 1
        if self.stack:
            raise FormattingError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"'
            )
        return self.out.text(), self.out.entities

    def _entity(self, i: int) -> int:
        match = _HTML_ENTITY_RE.match(self.text, i)
        decoded = _decode_html_entity(match) if match else None
        if match is None or decoded is None:
            self.out.emit("&")
            return i + 1
        self.out.emit(decoded)
        return match.end()

    def _start_tag(self, i: int) -> int:
        name_match = _TAG_NAME_RE.match(self.text, i + 1)
        assert name_match is not None
        name = name_match.group().lower()
        where = _byte_offset(self.text, i)
        if not name:
            raise FormattingError(f"Empty tag name at byte offset {where}")
        if name not in _HTML_TAGS:
            raise FormattingError(f'Unsupported start tag "{name}" at byte offset {where}')
        attrs: dict[str, str] = {}
        j = name_match.end()
        while True:
            while j < len(self.text) and self.text[j].isspace():
                j += 1
            if j >= len(self.text):
                raise FormattingError(f'Unclosed start tag "{name}" at byte offset {where}')
            if self.text[j] == ">":
                break
            attr = _ATTR_RE.match(self.text, j)
            if attr is None or attr.end() == j:
                raise FormattingError(f'Unclosed start tag "{name}" at byte offset {where}')
            value = attr.group(2) or ""
            if value[:1] in {'"', "'"}:
                value = value[1:-1]
            attrs[attr.group(1).lower()] = _unescape_html(value)
            j = attr.end()
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise FormattingError('Tag "span" must have class "tg-spoiler"')
        self.stack.append(_OpenTag(name=name, start=self.out.position, attrs=attrs))
        return j + 1

    def _end_tag(self, i: int) -> int:
        name_match = _TAG_NAME_RE.match(self.text, i + 2)
        assert name_match is not None
        name = name_match.group().lower()
        where = _byte_offset(self.text, i)
        j = name_match.end()
        while j < len(self.text) and self.text[j].isspace():
            j += 1
        if j >= len(self.text) or self.text[j] != ">":
            raise FormattingError(f"Can't find end of the end tag at byte offset {where}")
        if not self.stack:
            raise FormattingError(f'Unexpected end tag "{name}" at byte offset {where}')
        tag = self.stack.pop()
        if tag.name != name:
            raise FormattingError(
                f'Unmatched end tag at byte offset {where}, expected "</{tag.name}>", '
                f'found "</{name}>"'
            )
        self._close(tag)
        return j + 1

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


def _decode_html_entity(match: re.Match[str]) -> str | None:
    decimal, hexadecimal, named = match.groups()
    if named is not None:
        return _HTML_NAMED.get(named.lower())
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _unescape_html(value: str) -> str:
    return _HTML_ENTITY_RE.sub(lambda m: _decode_html_entity(m) or m.group(), value)


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}
_MDV2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough"}


@dataclass
class _OpenMark:
    kind: str
    start: int
    index: int


class _MarkdownV2Parser:
    """A parser following the Bot API's MarkdownV2 rules, including its escaping demands."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Output()
        self.stack: list[_OpenMark] = []
        self.quote_start: int | None = None
        self.quote_expandable = False

    def parse(self) -> tuple[str, list[Entity]]:
        text, i = self.text, 0
        while i < len(text):
            if i == 0 or text[i - 1] == "\n":
                i = self._line_start(i)
                if i >= len(text):
                    break
            i = self._step(i)
        self._end_quote()
        if self.stack:
            mark = self.stack[-1]
            raise FormattingError(
                f"Can't find end of {_MDV2_NAMES[mark.kind]} entity at byte offset "
                f"{_byte_offset(text, mark.index)}"
            )
        return self.out.text(), self.out.entities

    def _line_start(self, i: int) -> int:
        text = self.text
        if text.startswith("**>", i):
            self._begin_quote(expandable=True)
            return i + 3
        if text.startswith(">", i):
            self._begin_quote(expandable=self.quote_expandable)
            return i + 1
        self._end_quote()
        return i

    def _begin_quote(self, *, expandable: bool) -> None:
        if self.quote_start is None:
            self.quote_start = self.out.position
        self.quote_expandable = self.quote_expandable or expandable

    def _end_quote(self) -> None:
        if self.quote_start is None:
            return
        end = self.out.position
        if self.out.text().endswith("\n"):
            # The newline that ends the last quoted line is not part of the quotation.
            end -= 1
        kind = "expandable_blockquote" if self.quote_expandable else "blockquote"
        self.out.add_span(self.quote_start, end, kind)
        self.quote_start = None
        self.quote_expandable = False

    def _step(self, i: int) -> int:
        text, char = self.text, self.text[i]
        if char == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) < 127:
            self.out.emit(text[i + 1])
            return i + 2
        if char == "`":
            return self._code(i)
        if text.startswith("||", i):
            if self.quote_expandable and (i + 2 == len(text) or text[i + 2] == "\n"):
                return i + 2
            return self._toggle("spoiler", i, 2)
        if char == "_" and text.startswith("__", i) and not self._closes_italic():
            return self._toggle("underline", i, 2)
        if char in _MDV2_MARKERS:
            return self._toggle(_MDV2_MARKERS[char], i, 1)
        if char == "[":
            self.stack.append(_OpenMark("text_link", self.out.position, i))
            return i + 1
        if text.startswith("![", i):
            self.stack.append(_OpenMark("custom_emoji", self.out.position, i))
            return i + 2
        if char == "]" and self.stack and self.stack[-1].kind in {"text_link", "custom_emoji"}:
            return self._link_end(i)
        if char in _MDV2_RESERVED:
            raise FormattingError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        self.out.emit(char)
        return i + 1

    def _closes_italic(self) -> bool:
        # In "___" both italic and underline may end; the innermost open one closes first.
        return (
            bool(self.stack)
            and self.stack[-1].kind == "italic"
            and any(mark.kind == "underline" for mark in self.stack)
        )

    def _toggle(self, kind: str, i: int, width: int) -> int:
        if any(mark.kind == kind for mark in self.stack):
            while self.stack:
                mark = self.stack.pop()
                if mark.kind == kind:
                    self.out.add_entity(mark.start, kind)
                    break
                raise FormattingError(
                    f"Can't find end of {_MDV2_NAMES[mark.kind]} entity at byte offset "
                    f"{_byte_offset(self.text, mark.index)}"
                )
        else:
            self.stack.append(_OpenMark(kind, self.out.position, i))
        return i + width

    def _code(self, i: int) -> int:
        text = self.text
        fence = "```" if text.startswith("```", i) else "`"
        j = i + len(fence)
        language = ""
        if fence == "```":
            newline = text.find("\n", j)
            first_line = text[j:newline] if newline != -1 else ""
            if newline != -1 and first_line and not any(c.isspace() for c in first_line):
                if "`" not in first_line and "\\" not in first_line:
                    language = first_line
                    j = newline + 1
            elif newline == j:
                j += 1
        start = self.out.position
        while j < len(text):
            if text[j] == "\\" and j + 1 < len(text) and 0 < ord(text[j + 1]) < 127:
                self.out.emit(text[j + 1])
                j += 2
                continue
            if text.startswith(fence, j):
                if fence == "`":
                    self.out.add_entity(start, "code")
                elif language:
                    self.out.add_entity(start, "pre", language=language)
                else:
                    self.out.add_entity(start, "pre")
                return j + len(fence)
            self.out.emit(text[j])
            j += 1
        name = "Pre" if fence == "```" else "Code"
        raise FormattingError(
            f"Can't find end of {name} entity at byte offset {_byte_offset(text, i)}"
        )

    def _link_end(self, i: int) -> int:
        text = self.text
        mark = self.stack.pop()
        if not text.startswith("(", i + 1):
            if mark.kind == "custom_emoji":
                raise FormattingError("Custom emoji entity must contain a tg://emoji URL")
            return i + 1
        j = i + 2
        url_chars: list[str] = []
        while j < len(text) and text[j] != ")":
            if text[j] == "\\" and j + 1 < len(text):
                url_chars.append(text[j + 1])
                j += 2
                continue
            url_chars.append(text[j])
            j += 1
        if j >= len(text):
            raise FormattingError(
                f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}"
            )
        url = "".join(url_chars)
        if mark.kind == "custom_emoji":
            emoji_id = url.removeprefix("tg://emoji?id=")
            if emoji_id == url:
                raise FormattingError("Custom emoji entity must contain a tg://emoji URL")
            self.out.add_entity(mark.start, "custom_emoji", custom_emoji_id=emoji_id)
        elif url:
            self.out.add_entity(mark.start, "text_link", url=url)
        return j + 1


_LEGACY_MARKERS = {"*": "bold", "_": "italic", "`": "code"}


def _parse_markdown_legacy(text: str) -> tuple[str, list[Entity]]:
    """Parse the legacy ``Markdown`` mode: no nesting, few escapes, no reserved characters."""
    out = _Output()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "_*`[":
            out.emit(text[i + 1])
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end == -1:
                raise _legacy_unclosed(text, i)
            body = text[i + 3 : end]
            language = ""
            newline = body.find("\n")
            if newline > 0 and not any(c.isspace() for c in body[:newline]):
                language, body = body[:newline], body[newline + 1 :]
            elif newline == 0:
                body = body[1:]
            start = out.position
            out.emit(body)
            extra = {"language": language} if language else {}
            out.add_entity(start, "pre", **extra)
            i = end + 3
            continue
        if char in _LEGACY_MARKERS:
            end = text.find(char, i + 1)
            if end == -1:
                raise _legacy_unclosed(text, i)
            start = out.position
            out.emit(text[i + 1 : end])
            out.add_entity(start, _LEGACY_MARKERS[char])
            i = end + 1
            continue
        if char == "[":
            close = text.find("]", i + 1)
            if close != -1 and text.startswith("(", close + 1):
                end = text.find(")", close + 2)
                if end == -1:
                    raise _legacy_unclosed(text, i)
                start = out.position
                out.emit(text[i + 1 : close])
                url = text[close + 2 : end]
                if url:
                    out.add_entity(start, "text_link", url=url)
                i = end + 1
                continue
        out.emit(char)
        i += 1
    return out.text(), out.entities


def _legacy_unclosed(text: str, index: int) -> FormattingError:
    return FormattingError(
        f"Can't find end of the entity starting at byte offset {_byte_offset(text, index)}"
    )
