"""Annotators draw on a copy and return it."""

from streamyolo.annotation.boxes import BoxAnnotator, class_color, tile

__all__ = ["BoxAnnotator", "class_color", "tile"]
