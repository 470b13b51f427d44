"""A live push that carries only the parts of a fragment a change touched.

A fragment declared with `parts` (fittribe/realtime/live.py) marks its pieces with an `id` and
`data-part="<group>"`, e.g. each day of a profile's calendar with that day's date. A change
announced with the times it touched is rendered with only the touched groups' parts
(`only_parts` in the template); the hub sends just those elements, each an out-of-band swap of
the element with its id, instead of the whole fragment. Every part is rendered fresh from the
database, so a page ends with each part's latest state whatever it missed in between; a part a
page does not have (another day of the strip) is ignored by htmx. Replays, re-fetches and pages
get the whole fragment."""
from __future__ import annotations

from html.parser import HTMLParser

MARK = "data-part"


class _PartFinder(HTMLParser):
    """(start, end) offsets of every top-most element that carries `data-part` and an id."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=False)
        self.text = text
        self.line_starts = [0] + [index + 1 for index, char in enumerate(text) if char == "\n"]
        self.spans: list[tuple[int, int]] = []
        self._open: tuple[str, int] | None = None  # (tag, start) of the part being read
        self._depth = 0  # same-named tags open inside it

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag, attrs):
        if self._open is not None:
            self._depth += tag == self._open[0]
        elif any(name == MARK for name, _ in attrs) and any(name == "id" and value for name, value in attrs):
            self._open, self._depth = (tag, self._offset()), 0

    def handle_endtag(self, tag):
        if self._open is None or tag != self._open[0]:
            return
        if self._depth:
            self._depth -= 1
            return
        end = self.text.index(">", self._offset()) + 1
        self.spans.append((self._open[1], end))
        self._open = None


def out_of_band_parts(html: str) -> str:
    """Every part of `html`, each as an out-of-band swap of the element with its id."""
    finder = _PartFinder(html)
    finder.feed(html)
    finder.close()
    swaps = []
    for start, end in finder.spans:
        part = html[start:end]
        name_end = 1
        while name_end < len(part) and part[name_end].isalnum():
            name_end += 1
        swaps.append(f'{part[:name_end]} hx-swap-oob="outerHTML"{part[name_end:]}')
    return "".join(swaps)
