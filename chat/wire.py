"""Read the frames the server sends: the one parser of them, for the tests and the load generator.

Every frame is HTML whose root elements carry `data-event` (or, for a message `<li>`, `data-seq`)
and the data-* attributes a script needs (docs/architecture.md, "Frames"). This parses it as a
document, the way htmx and the browser do, so what it reads does not depend on the order of
attributes or on class strings.

Standard library only (no Django), so bench/loadgen.py can import it without setting Django up.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Element:
    """One element of a frame: its tag, attributes (a bare attribute reads as ""), text and children."""

    tag: str
    attrs: dict
    text: str = ""
    children: list = field(default_factory=list)

    @property
    def event(self) -> str:
        """Return the frame type this element carries (`data-event`), or "" for none."""
        return self.attrs.get("data-event", "")

    def data(self, name: str, default: str = "") -> str:
        """Return the data attribute `name` ("client-msg-id" for data-client-msg-id)."""
        return self.attrs.get(f"data-{name}", default)

    def number(self, name: str) -> int | None:
        """Return the data attribute `name` as a whole number, or None when it is missing or not one."""
        value = self.data(name)
        return int(value) if value.isascii() and value.isdigit() else None

    def iter(self) -> Iterator["Element"]:
        """Yield this element and every element inside it, in document order."""
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, predicate) -> list["Element"]:
        """Return every element inside this one (itself included) for which predicate(element) holds."""
        return [element for element in self.iter() if predicate(element)]


class _Parser(HTMLParser):
    """Build the element tree and collect every element that has a data-event or data-seq attribute."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.found: list[Element] = []
        self.stack: list[tuple[Element, int]] = []  # open elements, with where their text starts
        self.chunks: list[str] = []  # every piece of text so far: an element's text is a slice of it

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: (v or "") for k, v in attrs})
        if self.stack:
            self.stack[-1][0].children.append(element)
        if "data-event" in element.attrs or "data-seq" in element.attrs:
            self.found.append(element)
        if tag not in self.VOID:
            self.stack.append((element, len(self.chunks)))

    def handle_endtag(self, tag):
        # An end tag closes the innermost open element of its name, and any left open inside it.
        if any(element.tag == tag for element, _ in self.stack):
            while self._pop().tag != tag:
                pass

    def handle_data(self, data):
        self.chunks.append(data)

    def _pop(self) -> Element:
        element, start = self.stack.pop()
        element.text = "".join(self.chunks[start:])
        return element

    def close(self):
        super().close()
        while self.stack:
            self._pop()


def parse(frame: str) -> list[Element]:
    """Return every element of the frame that has a data-event or data-seq attribute, in document order."""
    parser = _Parser()
    parser.feed(frame)
    parser.close()
    return parser.found


def may_carry(frame: str, *events: str) -> bool:
    """Say cheaply whether the frame may hold an element of one of these frame types.

    A pre-check only, for readers that take hundreds of sockets' frames and act on few types: it
    looks for the attribute as the server writes it, so True still needs parse() to decide.
    Message items arrive inside a `messages` frame (never inside any other frame of a socket).
    """
    return any(f'data-event="{event}"' in frame for event in events)


def is_message(element: Element) -> bool:
    """Say whether the element is a message item: it has a seq, and no frame type of its own.

    (A `read` frame carries data-seq too: the position read up to.)
    """
    return "data-seq" in element.attrs and "data-event" not in element.attrs


def messages(elements: list[Element]) -> list[Element]:
    """Return the message items among the elements."""
    return [element for element in elements if is_message(element)]


def events(elements: list[Element], event: str) -> list[Element]:
    """Return the elements that carry this frame type."""
    return [element for element in elements if element.event == event]


def queue_items(queue: Element) -> list[Element]:
    """Return the requests a HUD queue frame lists (the items with data-request-id), in its order."""
    return [element for element in queue.iter() if element is not queue and "data-request-id" in element.attrs]
