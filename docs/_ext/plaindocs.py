"""Docstrings written as plain text, read as reStructuredText without losing what they say.

Many approxlab docstrings are written for ``help()``: ``|x|`` for an absolute value, formulas and shell
lines indented under a sentence. reStructuredText reads ``|x|`` as a substitution and an indented line
after a sentence as a block quote or a definition list, and warns. Before numpydoc parses a docstring,
this extension

- escapes ``|`` outside backquotes (grid-table lines, which start with ``|`` or ``+``, are left alone);
- shows an indented run of lines under a sentence (with or without a blank line between), and a paragraph
  that reads as Python code, as a literal block: what the author laid out by hand stays laid out; every
  indented run ends with a blank line.

numpydoc's own sections (Parameters, Returns, Raises, ...) are left as they are: their indentation is
syntax. A class documented at more than one public address (``approxlab.KernelVariant`` and the module
that defines it) is noted once under its defining name instead of warning of a duplicate.
"""

from __future__ import annotations

import re

_NUMPYDOC_FIELDS = {"parameters", "other parameters", "returns", "yields", "receives", "raises", "warns",
                    "warnings", "attributes", "methods", "see also"}
_SPANS = re.compile(r"(``.*?``|:\w+:`[^`]*`|`[^`]*`_*)")
_RULE = re.compile(r"^\s*[-=~^]{3,}\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _escape_bars(line: str) -> str:
    stripped = line.strip()
    table = stripped.startswith(("+-", "+=", "| ")) or (stripped.startswith("|") and stripped.endswith("|")
                                                       and " | " in stripped)
    if not stripped or table or stripped.startswith(("..", ">>>")):
        return line
    parts = _SPANS.split(line)
    return "".join(p if i % 2 else re.sub(r"(?<!\\)\|", r"\\|", p) for i, p in enumerate(parts))


_CODE = re.compile(r"^\s*(from [a-z_]|import [a-z_]|\$ |[A-Za-z_][\w.\[\]]*\s*=\s*[A-Za-z_][\w.]*\(|"
                   r"[A-Za-z_][\w.]*\(.*\)\s*(#.*)?$)", re.ASCII)


def _is_code(paragraph: list[str]) -> bool:
    """A paragraph every line of which reads as Python (imports, calls, assignments from calls)."""
    return bool(paragraph) and all(_CODE.match(line) for line in paragraph)


def _is_structure(line: str) -> bool:
    """Lines after which an indented line is meant by reStructuredText (directives, fields, lists, ``::``)."""
    s = line.strip()
    return (s.endswith("::") or s.startswith(("..", ":", "- ", "* ", "+ ", ">>>", "...")) or
            bool(re.match(r"^(\d+|#)[.)] ", s)))


def _previous_paragraph(out: list[str]) -> list[str]:
    """The lines of the last paragraph before the trailing blank lines of ``out``."""
    end = len(out)
    while end and not out[end - 1].strip():
        end -= 1
    start = end
    while start and out[start - 1].strip():
        start -= 1
    return out[start:end]


def _is_list_continuation(paragraph: list[str], line: str) -> bool:
    """``line`` continues a list item or a field whose text starts at its indentation."""
    first = paragraph[0]
    match = re.match(r"^(\s*)([-*+]|\d+[.)]|#[.)]|:[^:]+:)\s+", first)
    return bool(match) and _indent(line) <= len(match.group(0))


def plain_to_rst(lines: list[str]) -> list[str]:
    """The docstring ``lines`` with plain-text layout made explicit (see the module docstring)."""
    out: list[str] = []
    section = None
    literal_indent = None   # indentation of the literal block being copied, if any
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _RULE.match(nxt) and not _RULE.match(line):
            section = line.strip().lower()
            literal_indent = None
            out += [line, nxt]
            i += 2
            continue
        if section in _NUMPYDOC_FIELDS:
            out.append(_escape_bars(line))
            i += 1
            continue
        if literal_indent is not None:
            if not line.strip() or _indent(line) >= literal_indent:
                out.append(line)
                i += 1
                continue
            if out and out[-1].strip():
                out.append("")
            literal_indent = None
        previous = out[-1] if out else ""
        if line.strip() and previous.strip() and _indent(line) > _indent(previous):
            if _is_structure(previous):
                if previous.strip().endswith("::"):
                    literal_indent = _indent(line)
                out.append(line)
            else:
                out += ["", "::", ""]
                literal_indent = _indent(line)
                out.append(line)
            i += 1
            continue
        if line.strip() and not previous.strip() and out and _indent(line) > 0:
            # an indented block after a blank line: a block quote to reStructuredText, a display to the author
            paragraph = _previous_paragraph(out)
            if paragraph and _indent(line) > _indent(paragraph[0]) and not any(map(_is_structure, paragraph)) \
                    and not _is_list_continuation(paragraph, line):
                out += ["::", ""]
                literal_indent = _indent(line)
                out.append(line)
                i += 1
                continue
        if previous.strip().endswith("::") and not line.strip():
            out.append(line)
            if i + 1 < len(lines) and lines[i + 1].strip():
                literal_indent = _indent(lines[i + 1]) if _indent(lines[i + 1]) > _indent(previous) else None
            i += 1
            continue
        if line.strip() and previous.strip() and _indent(line) < _indent(previous) and not _is_structure(line):
            # a dedent without a blank line ends a block quote or list: make the end explicit
            prev_block = [p for p in out[-3:] if p.strip()]
            if prev_block and all(_indent(p) > _indent(line) for p in prev_block[-1:]):
                out.append("")
        if line.strip() and not previous.strip() and any(o.strip() for o in out) and section not in _NUMPYDOC_FIELDS:
            paragraph = []
            for following in lines[i:]:
                if not following.strip():
                    break
                paragraph.append(following)
            if _is_code(paragraph) and not paragraph[0].lstrip().startswith(">>>"):
                out += ["::", ""] + ["    " + p for p in paragraph]
                i += len(paragraph)
                continue
        out.append(_escape_bars(line))
        i += 1
    return out


def _process(app, what, name, obj, options, lines):
    lines[:] = plain_to_rst(list(lines))


def _quiet_alias_duplicates():
    """Two re-exports of one class register its canonical name twice; keep the first, silently."""
    from sphinx.domains.python import PythonDomain

    note_object = PythonDomain.note_object

    def note(self, name, objtype, node_id, aliased=False, location=None):
        other = self.objects.get(name)
        if other is not None and other.aliased and aliased:
            return
        return note_object(self, name, objtype, node_id, aliased=aliased, location=location)

    PythonDomain.note_object = note


def setup(app):
    app.connect("autodoc-process-docstring", _process, priority=100)  # before numpydoc (500)
    _quiet_alias_duplicates()
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
