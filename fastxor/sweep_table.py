"""The sweep's table: a pandas DataFrame that knows it is a grid, so that
``to_xarray()`` gives a Dataset over the grid's axes (hidden x lr x ...)
rather than pandas' flat one over the row index. Imported only where pandas is."""
import pandas as pd


class SweepTable(pd.DataFrame):
    """One row per cell (``sweep.COLUMNS``); every DataFrame operation works
    as usual, and a selection of rows is still a SweepTable."""

    @property
    def _constructor(self):
        return SweepTable

    def to_xarray(self):
        """The grid as an ``xarray.Dataset`` (``labelled.sweep_dataset``)."""
        from .labelled import sweep_dataset

        return sweep_dataset(self)
