"""``cupy.cuda.driver`` of the fake."""


class CUDADriverError(RuntimeError):
    pass
