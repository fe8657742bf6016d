"""``cupy.cuda.memory`` of the fake."""
from .._fake import MemoryPool, OutOfMemoryError  # noqa: F401
