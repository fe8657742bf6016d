"""The benchmark suite, apart from the core: what a user would otherwise run
(``peers``), how it is timed and checked against fastxor (``harness``), and
the table ``fastxor bench`` prints (``report``). ``make bench`` (pytest-
benchmark, ``bench/``) and the GPU benchmark use the same harness."""
