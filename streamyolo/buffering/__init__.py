"""Per-stream bounded buffers between capture and inference."""

from streamyolo.buffering.ring import BufferClosed, BufferCounts, Empty, Full, Overflow, RingBuffer

__all__ = ["BufferClosed", "BufferCounts", "Empty", "Full", "Overflow", "RingBuffer"]
