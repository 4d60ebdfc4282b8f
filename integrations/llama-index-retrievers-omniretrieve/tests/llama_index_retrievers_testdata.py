"""The small mixed folder the retriever tests read (names shared by fixtures and tests)."""

from __future__ import annotations

# One folder: 6 images and 5 texts, named after their content so the fake reranker (word overlap
# with file names and texts) and the tests can tell them apart.
SCENES = (
    ("red", "circle", "top left"),
    ("blue", "square", "center"),
    ("green", "triangle", "bottom right"),
    ("red", "square", "top right"),
    ("yellow", "cross", "bottom left"),
    ("purple", "circle", "center"),
)
TEXTS = {
    "note-red-circle.txt": "a red circle in the top left",
    "note-blue-square.txt": "a blue square in the center",
    "note-green.txt": "a green triangle in the bottom right",
    "note-weather.txt": "the weather is sunny and warm today",
    "note-soup.txt": "a recipe for tomato soup with bread",
}


def image_name(color: str, shape: str, position: str) -> str:
    return f"{color}-{shape}-{position.replace(' ', '_')}.png"
