"""``cupy.cuda.compiler`` of the fake."""


class CompileException(Exception):
    pass
