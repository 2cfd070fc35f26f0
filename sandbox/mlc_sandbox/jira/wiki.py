"""Rich text as REST API v2 shows it: Jira wiki markup strings, converted to and from the Atlassian Document Format
documents the site keeps (and v3 shows). Jira Cloud keeps one document per description, environment and comment
body and converts it for v2; the conversion is lossy for what wiki markup cannot say.

What converts both ways: paragraphs (lines of one paragraph become hard breaks), headings `h1.`-`h6.`, bullet and
numbered lists (`*`, `#`, nested by repeating the marker), code blocks `{code}` / `{code:lang}` (and `{noformat}` read
as a code block), quotes (`bq. ` and `{quote}`), horizontal rules `----`, and the inline marks strong `*x*`, emphasis
`_x_`, monospace `{{x}}`, strike-through `-x-`, underline `+x+` and links `[text|url]` / `[url]`. ADF nodes beyond
that are written to wiki markup as their text (mentions as `[~accountid:<id>]`, emoji as their short name, cards as
links); wiki markup beyond that stays literal text in the document."""

from __future__ import annotations

import re

# inline marks: wiki character(s) -> ADF mark type; a mark opens after a non-word character and closes before one
_MARKS = (("*", "strong"), ("_", "em"), ("-", "strike"), ("+", "underline"))
_WIKI_OF_MARK = {mark: char for char, mark in _MARKS}


def _mark_pattern(char: str, mark: str) -> str:
    c = re.escape(char)
    return rf"(?<![\w{c}]){c}(?=[^\s{c}])(?P<{mark}>.+?)(?<=[^\s{c}]){c}(?![\w{c}])"

_INLINE = re.compile("|".join([
    r"\[(?P<label>[^\[\]|]*)\|(?P<href>[^\[\]|\s]+)\]",
    r"\[(?P<bare>(?:https?|mailto|ftp):[^\[\]|\s]+)\]",
    r"\{\{(?P<code>.+?)\}\}",
    *(_mark_pattern(char, mark) for char, mark in _MARKS),
]))

_HEADING = re.compile(r"^h([1-6])\.\s+(.*)$")
_LIST_ITEM = re.compile(r"^([*#]+)\s+(.*)$")
_CODE_OPEN = re.compile(r"^\{(code|noformat)(?::([^}]*))?\}(.*)$")
_QUOTE_LINE = re.compile(r"^bq\.\s+(.*)$")


# wiki markup -> ADF

def to_adf(text: str) -> dict | None:
    """The document a v2 client's wiki markup stands for; None for an empty string (the field is cleared)."""
    if not text.strip():
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[dict] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(_paragraph("\n".join(paragraph)))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        code = _CODE_OPEN.match(line)
        if code:
            flush()
            i = _code_block(lines, i, code, blocks)
            continue
        if line.strip() == "{quote}":
            flush()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "{quote}"), len(lines))
            inner = to_adf("\n".join(lines[i + 1:end]))
            blocks.append({"type": "blockquote", "content": _quotable(inner)})
            i = end + 1
            continue
        if _LIST_ITEM.match(line):
            flush()
            end, kind = i + 1, line[0]
            while end < len(lines) and _LIST_ITEM.match(lines[end]) and not (  # another kind at the top: a new list
                    len(_LIST_ITEM.match(lines[end]).group(1)) == 1 and lines[end][0] != kind):
                end += 1
            blocks.append(_list([_LIST_ITEM.match(item).groups() for item in lines[i:end]]))
            i = end
            continue
        heading, quote = _HEADING.match(line), _QUOTE_LINE.match(line)
        if heading:
            flush()
            blocks.append({"type": "heading", "attrs": {"level": int(heading.group(1))},
                           "content": _inline(heading.group(2))})
        elif quote:
            flush()
            blocks.append({"type": "blockquote", "content": [_paragraph(quote.group(1))]})
        elif line.strip() == "----":
            flush()
            blocks.append({"type": "rule"})
        elif not line.strip():
            flush()
        else:
            paragraph.append(line)
        i += 1
    flush()
    return {"type": "doc", "version": 1, "content": blocks}


def _code_block(lines: list[str], start: int, opening: re.Match, blocks: list[dict]) -> int:
    kind, params, rest = opening.groups()
    closing = "{" + kind + "}"
    body: list[str] = []
    if closing in rest:  # {code}one line{code}
        body.append(rest[:rest.index(closing)])
        end = start
    else:
        if rest:
            body.append(rest)
        end = start + 1
        while end < len(lines) and closing not in lines[end]:
            body.append(lines[end])
            end += 1
        if end < len(lines):
            before = lines[end][:lines[end].index(closing)]
            if before:
                body.append(before)
    node: dict = {"type": "codeBlock"}
    language = _language(params) if kind == "code" else None
    if language:
        node["attrs"] = {"language": language}
    text = "\n".join(body)
    if text:
        node["content"] = [{"type": "text", "text": text}]
    blocks.append(node)
    return end + 1


def _language(params: str | None) -> str | None:
    for part in (params or "").split("|"):
        key, _, value = part.partition("=")
        if not value and key.strip():
            return key.strip()
        if key.strip() == "language" and value.strip():
            return value.strip()
    return None


def _paragraph(text: str) -> dict:
    content: list[dict] = []
    for number, line in enumerate(text.split("\n")):
        if number:
            content.append({"type": "hardBreak"})
        content.extend(_inline(line))
    return {"type": "paragraph", "content": content} if content else {"type": "paragraph"}


def _quotable(document: dict | None) -> list[dict]:
    """A quote holds paragraphs, lists and code blocks only."""
    allowed = {"paragraph", "bulletList", "orderedList", "codeBlock"}
    content = [b for b in (document or {}).get("content", []) if b["type"] in allowed]
    return content or [{"type": "paragraph"}]


def _list(items: list[tuple[str, str]]) -> dict:
    """Nested lists from (marker, text) lines: the marker's length is the depth, its last character the kind."""
    root: dict = {}
    stack: list[tuple[int, dict]] = []  # (depth, list node)
    for marker, text in items:
        # a marker deeper than one level below the list it is in counts as one level below (nothing is lost)
        depth = min(len(marker), stack[-1][0] + 1 if stack else 1)
        kind = "orderedList" if marker[-1] == "#" else "bulletList"
        while stack and (stack[-1][0] > depth or (stack[-1][0] == depth and stack[-1][1]["type"] != kind)):
            stack.pop()
        if not stack or stack[-1][0] < depth:
            node = {"type": kind, "content": []}
            if stack and stack[-1][1]["content"]:
                stack[-1][1]["content"][-1]["content"].append(node)
            else:
                root = node
            stack.append((depth, node))
        stack[-1][1]["content"].append({"type": "listItem", "content": [_paragraph(text)]})
    return root


def _inline(text: str, marks: tuple[dict, ...] = ()) -> list[dict]:
    nodes: list[dict] = []
    position = 0
    for found in _INLINE.finditer(text):
        if found.start() > position:
            nodes.append(_text(text[position:found.start()], marks))
        group = found.lastgroup
        if group in ("label", "href"):
            label = found.group("label") or found.group("href")
            nodes.extend(_inline(label, marks + ({"type": "link", "attrs": {"href": found.group("href")}},)))
        elif group == "bare":
            url = found.group("bare")
            nodes.append(_text(url, marks + ({"type": "link", "attrs": {"href": url}},)))
        elif group == "code":  # ADF allows no mark but link beside code
            nodes.append(_text(found.group("code"), tuple(m for m in marks if m["type"] == "link")
                               + ({"type": "code"},)))
        else:
            nodes.extend(_inline(found.group(group), marks + ({"type": group},)))
        position = found.end()
    if position < len(text):
        nodes.append(_text(text[position:], marks))
    return [n for n in nodes if n["text"]]


def _text(text: str, marks: tuple[dict, ...]) -> dict:
    node: dict = {"type": "text", "text": text}
    if marks:
        node["marks"] = list(marks)
    return node


# ADF -> wiki markup

def from_adf(document) -> str | None:
    """The wiki markup v2 shows for a stored document (None stays None)."""
    if document is None:
        return None
    return "\n\n".join(filter(None, (_block(b) for b in document.get("content", []))))


def _block(node: dict, depth_marker: str = "") -> str:
    kind = node.get("type")
    content = node.get("content", [])
    if kind == "paragraph":
        return _inline_wiki(content)
    if kind == "heading":
        return f"h{node.get('attrs', {}).get('level', 1)}. {_inline_wiki(content)}"
    if kind in ("bulletList", "orderedList"):
        return "\n".join(_list_lines(node, depth_marker))
    if kind == "codeBlock":
        language = (node.get("attrs") or {}).get("language")
        opening = "{code:" + language + "}" if language else "{code}"
        return f"{opening}\n{''.join(t.get('text', '') for t in content)}\n{{code}}"
    if kind == "blockquote":
        inner = "\n\n".join(filter(None, (_block(b) for b in content)))
        return f"bq. {inner}" if len(content) == 1 and content[0].get("type") == "paragraph" \
            and "\n" not in inner else f"{{quote}}\n{inner}\n{{quote}}"
    if kind == "rule":
        return "----"
    if "text" in node or kind in ("hardBreak", "mention", "emoji", "inlineCard", "date", "status"):
        return _inline_wiki([node])
    # tables, panels, media, expands …: their text, block by block
    return "\n\n".join(filter(None, (_block(b) for b in content)))


def _list_lines(node: dict, prefix: str) -> list[str]:
    marker = prefix + ("#" if node["type"] == "orderedList" else "*")
    lines: list[str] = []
    for item in node.get("content", []):
        texts: list[str] = []
        for child in item.get("content", []):
            if child.get("type") in ("bulletList", "orderedList"):
                if texts:
                    lines.append(f"{marker} {' '.join(texts)}")
                    texts = []
                elif not lines or not lines[-1].startswith(marker + " "):
                    lines.append(f"{marker} ")
                lines.extend(_list_lines(child, marker))
            else:
                texts.append(_block(child))
        if texts:
            lines.append(f"{marker} {' '.join(texts)}")
    return lines


def _inline_wiki(nodes: list[dict]) -> str:
    out: list[str] = []
    for node in nodes:
        kind = node.get("type")
        attrs = node.get("attrs") or {}
        if kind == "text":
            out.append(_marked(node["text"], node.get("marks") or []))
        elif kind == "hardBreak":
            out.append("\n")
        elif kind == "mention":
            out.append(f"[~accountid:{attrs.get('id', '')}]")
        elif kind == "emoji":
            out.append(attrs.get("text") or attrs.get("shortName", ""))
        elif kind == "inlineCard":
            out.append(f"[{attrs['url']}]" if attrs.get("url") else "")
        elif kind == "date":
            out.append(str(attrs.get("timestamp", "")))
        elif kind == "status":
            out.append(attrs.get("text", ""))
        else:
            out.append(_inline_wiki(node.get("content", [])))
    return "".join(out)


def _marked(text: str, marks: list[dict]) -> str:
    link = next((m for m in marks if m.get("type") == "link"), None)
    for mark in marks:
        kind = mark.get("type")
        if kind == "code":
            text = "{{" + text + "}}"
        elif kind in _WIKI_OF_MARK:
            text = _WIKI_OF_MARK[kind] + text + _WIKI_OF_MARK[kind]
    if link is not None:
        href = link.get("attrs", {}).get("href", "")
        text = f"[{href}]" if text == href else f"[{text}|{href}]"
    return text
